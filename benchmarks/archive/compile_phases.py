#!/usr/bin/env python
"""Where the first call's time goes: trace, lower, XLA compile, first run, against a later run.

Each of ``--runs`` fresh processes (pinned to ``--threads`` cores, persistent cache off) builds
the race's structure and times the phases of ``eqlr_jax.potential.predict`` (energy + forces +
stress) through JAX's staged API: ``trace`` (Python tracing and autodiff), ``lower`` (to
StableHLO), ``compile`` (XLA: HLO passes and the kernels' MLIR and LLVM), ``first_run`` (the
first execution) and ``run`` (median of five later executions). ``first_call`` is the sum of the
first four, what ``bench_sr.py`` reports as ``compile_s``. One JSON line per process, then one with
the medians::

    python benchmarks/archive/compile_phases.py --natoms 1000 --threads 1 --runs 5
"""
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, where bench_sr.py is
sys.path.insert(0, HERE)
from bench_sr import fresh_process_parser, python_json  # noqa: E402

CHILD = r"""
import json, sys, time, statistics
sys.path.insert(0, {here!r})
from bench_sr import pin_cores, build_atoms
pin_cores({threads})
import jax, jax.numpy as jnp
import eqlr_jax
from eqlr_jax import potential
cfg = eqlr_jax.NequIPConfig(species=("Na", "Cl"), r_max=5.0, l_max={lmax})
pot = eqlr_jax.Potential.init(cfg, seed=0)
graph, _ = pot.graph(eqlr_jax.Structure.from_ase(build_atoms("nacl", {natoms})), dtype=jnp.float32)
params = potential._cast_params(pot.params, jnp.float32)
t = [time.perf_counter()]
traced = potential.predict.trace(cfg, params, graph, True); t.append(time.perf_counter())
lowered = traced.lower(); t.append(time.perf_counter())
compiled = lowered.compile(); t.append(time.perf_counter())
jax.block_until_ready(compiled(params, graph)); t.append(time.perf_counter())
runs = []
for _ in range(5):
    t0 = time.perf_counter(); jax.block_until_ready(compiled(params, graph)); runs.append(time.perf_counter() - t0)
d = dict(zip(("trace", "lower", "compile", "first_run"), (b - a for a, b in zip(t, t[1:]))))
d.update(first_call=t[-1] - t[0], run=statistics.median(runs))
print(json.dumps({{k: round(v, 3) for k, v in d.items()}}))
"""


def main(argv=None):
    a = fresh_process_parser(__doc__, 5, "fresh processes").parse_args(argv)
    code = CHILD.format(here=HERE, threads=a.threads, lmax=a.lmax, natoms=a.natoms)
    rows = []
    for _ in range(a.runs):
        rows.append(python_json(code))
        print(json.dumps(dict(rows[-1], natoms=a.natoms, lmax=a.lmax, threads=a.threads)), flush=True)
    med = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    print(json.dumps(dict(med, median_of=len(rows), natoms=a.natoms, lmax=a.lmax, threads=a.threads)))


if __name__ == "__main__":
    main()
