#!/usr/bin/env python
"""Per-atom cost growth of the race's E+F+stress call, both sizes timed in one process.

On this shared VM, run times drift between a fast and a slow state that lasts seconds to
minutes (the same call moves by up to 1.6x; ``benchmarks/README.md``, "Reading the numbers").
Times from two separate processes, minutes apart, then gave growths from 0.69 to 1.67 for the same code.
Here both calls (default 512 and 4096 atoms of rattled rock-salt NaCl, ``bench_sr.py``'s
structures and hyperparameters) are compiled in one process and timed in adjacent pairs, in
alternating order (small-large, large-small, ...). Each pair gives one growth,
``(t_large / n_large) / (t_small / n_small)``; the headline is the median over pairs, which
compares the two sizes in the same VM state. The ratio of the two medians is printed too.

    python benchmarks/bench_growth.py --threads 1 --pairs 21

``--order random`` shuffles the atoms of both structures (seeded), as an MD trajectory of a
liquid or a packed box would have them; ``--order repeat`` (default) keeps ASE's
cell-by-cell order. One JSON line on stdout.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def reorder(atoms, order: str, seed: int = 0):
    """``atoms`` in ASE's cell-by-cell order (``repeat``) or shuffled (``random``)."""
    import numpy as np

    if order == "repeat":
        return atoms
    if order == "random":
        return atoms[np.random.default_rng(seed).permutation(len(atoms))]
    raise ValueError(f"unknown order {order!r}")


def quartiles(values):
    q = statistics.quantiles(values, n=4)
    return round(q[0], 3), round(q[2], 3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs=2, default=(512, 4096), metavar=("SMALL", "LARGE"))
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1, help="CPU cores to use (pinned)")
    p.add_argument("--pairs", type=int, default=21, help="timed pairs (after one untimed pair)")
    p.add_argument("--order", default="repeat", choices=["repeat", "random"])
    p.add_argument("--edge-block", default="auto", help="edges per block: an int, 'auto' or 'none'")
    a = p.parse_args(argv)
    if a.pairs < 2:
        p.error("--pairs must be at least 2 (the quartiles of the per-pair growths need two)")
    from bench_sr import pin_cores

    pin_cores(a.threads)
    import jax

    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from bench_sr import build_atoms, compile_call, edge_block_runtime

    small, large = a.sizes
    calls, compile_s, natoms = {}, {}, {}
    for n in (small, large):
        atoms = reorder(build_atoms("nacl", n), a.order)
        natoms[n] = len(atoms)
        c, q, g, compile_s[n] = compile_call(atoms, a.lmax, a.dtype, runtime=edge_block_runtime(a.edge_block))
        calls[n] = (c, q, g)
        jax.block_until_ready(c(q, g))
    times = {small: [], large: []}
    for i in range(a.pairs + 1):
        for n in ((small, large) if i % 2 == 0 else (large, small)):
            c, q, g = calls[n]
            t0 = time.perf_counter()
            jax.block_until_ready(c(q, g))
            if i:
                times[n].append(time.perf_counter() - t0)
    per_atom = {n: [t / natoms[n] for t in times[n]] for n in times}
    pair_growth = [b / s for s, b in zip(per_atom[small], per_atom[large])]
    us = {n: 1e6 * statistics.median(per_atom[n]) for n in per_atom}
    commit = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    print(json.dumps(dict(
        code="eqlr_jax", natoms=[natoms[small], natoms[large]], lmax=a.lmax, dtype=a.dtype, threads=a.threads,
        order=a.order, edge_block=a.edge_block, pairs=a.pairs, compile_s=[round(compile_s[small], 2), round(compile_s[large], 2)],
        us_per_atom=[round(us[small], 1), round(us[large], 1)],
        growth=round(statistics.median(pair_growth), 3), growth_quartiles=quartiles(pair_growth),
        growth_of_medians=round(us[large] / us[small], 3),
        pair_growth=[round(x, 3) for x in pair_growth], jax=jax.__version__, commit=commit)), flush=True)


if __name__ == "__main__":
    main()
