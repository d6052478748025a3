#!/usr/bin/env python
"""First call with the persistent compilation cache: a cold process, then a process that loads.

Runs ``--runs`` fresh processes one after another with ``eqlr_jax.enable_compilation_cache``
pointed at a new temporary directory; the first compiles and writes the program, the others
load it. Each process times its first energy + forces + stress call through ``Potential``
(trace, lower, compile or load, run) on rattled NaCl. One JSON line::

    python benchmarks/archive/bench_compile_cache.py --natoms 1000 --threads 1
"""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, where bench_sr.py is
sys.path.insert(0, HERE)
from bench_sr import fresh_process_parser, python_json  # noqa: E402

CHILD = r"""
import sys, time, json
sys.path.insert(0, {here!r})
from bench_sr import build_atoms, pin_cores
pin_cores({threads})  # (it also turns the cache off; enable_compilation_cache below turns it back on)
import jax
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else None)
import eqlr_jax
eqlr_jax.enable_compilation_cache({cache!r})
pot = eqlr_jax.Potential.init(eqlr_jax.NequIPConfig(species=("Na", "Cl"), r_max=5.0, l_max={lmax}), seed=0)
graph, _ = pot.graph(eqlr_jax.Structure.from_ase(build_atoms("nacl", {natoms})))
t0 = time.perf_counter()
jax.block_until_ready(pot(graph, compute_stress=True)["forces"])
print(json.dumps(dict(first_call_s=time.perf_counter() - t0, cache_hits=len(hits))))
"""


def main(argv=None):
    a = fresh_process_parser(__doc__, 3, "processes (the first one compiles)").parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        code = CHILD.format(here=HERE, threads=a.threads, cache=cache, lmax=a.lmax, natoms=a.natoms)
        rows = [python_json(code) for _ in range(a.runs)]
    print(json.dumps(dict(natoms=a.natoms, lmax=a.lmax, threads=a.threads,
                          first_call_s=[round(r["first_call_s"], 2) for r in rows],
                          cache_hits=[r["cache_hits"] for r in rows])))


if __name__ == "__main__":
    main()
