#!/usr/bin/env python
"""``Runtime.edge_block`` values against each other in one process, alternating (CPU).

Compiles the SR energy + forces + stress call (rattled rock-salt NaCl, the race's
hyperparameters) once per ``DTYPE:EDGE_BLOCK`` spec, then runs the compiled calls in turn,
``--rounds`` times (in reverse order every other round), so that drift of the machine hits every
variant alike. One JSON line per spec, with ``rel`` = its median over the first spec's median and
``rel_pairs`` = the median over rounds of its time over the first spec's time in the same round::

    python benchmarks/sweep_edge_block.py --natoms 1000 --threads 1 float32:4096 float32:2048 float32:1024 float32:512

A spec's EDGE_BLOCK is an int, ``auto`` or ``none``. Float64 specs turn on ``jax_enable_x64``
for the whole process (float32 specs then run with 64-bit indices too: compare float64 against
float32 only within such a run).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("specs", nargs="+", help="DTYPE:EDGE_BLOCK, e.g. float32:1024")
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    a = p.parse_args()
    from bench_sr import pin_cores

    pin_cores(a.threads)
    import jax

    if any(s.startswith("float64") for s in a.specs):
        jax.config.update("jax_enable_x64", True)
    from bench_sr import build_atoms, compile_call, edge_block_runtime

    atoms = build_atoms("nacl", a.natoms)
    runs = {}
    for spec in a.specs:
        dtype, eb = spec.split(":")
        c, prm, g, compile_s = compile_call(atoms, a.lmax, dtype, runtime=edge_block_runtime(eb))
        jax.block_until_ready(c(prm, g))
        runs[spec] = (c, prm, g, compile_s)
    times = {k: [] for k in runs}
    for r in range(a.rounds):
        for k in (a.specs if r % 2 == 0 else a.specs[::-1]):  # alternate the order of the calls
            c, prm, g, _ = runs[k]
            t = time.perf_counter()
            jax.block_until_ready(c(prm, g))
            times[k].append(1e3 * (time.perf_counter() - t))
    base = statistics.median(times[a.specs[0]])
    for k, ts in times.items():
        print(json.dumps(dict(spec=k, natoms=len(atoms), lmax=a.lmax, threads=a.threads, rounds=a.rounds,
                              compile_s=round(runs[k][3], 1), ms=round(statistics.median(ts), 1),
                              ms_min=round(min(ts), 1), rel=round(statistics.median(ts) / base, 3),
                              rel_pairs=round(statistics.median(t / b for t, b in zip(ts, times[a.specs[0]])), 3))),
              flush=True)


if __name__ == "__main__":
    main()
