#!/usr/bin/env python
"""Memory of the SR model against ``Runtime.edge_block``: XLA's temporary buffer size
(``compiled.memory_analysis()``), process peak RSS, and the median energy+forces+stress time.

One fresh process per edge_block value (peak RSS is per process), one JSON line each:

    python benchmarks/bench_memory.py --natoms 4096 --lmax 1 --edge-blocks none,32768,16384,4096

Same structures and hyperparameters as ``bench_sr.py`` (rattled NaCl, r_max 5 Å, 32 features,
4 layers), float32, pinned to one core by default.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_one(natoms: int, lmax: int, edge_block: str, iters: int, threads: int) -> dict:
    sys.path.insert(0, HERE)
    from bench_sr import build_atoms, edge_block_runtime, pin_cores

    pin_cores(threads)
    import jax
    import jax.numpy as jnp

    import eqlr_jax
    from eqlr_jax.potential import predict

    atoms = build_atoms("nacl", natoms)
    cfg = eqlr_jax.NequIPConfig(species=("Na", "Cl"), r_max=5.0, l_max=lmax, num_features=32, num_layers=4)
    runtime = edge_block_runtime(edge_block)
    pot = eqlr_jax.Potential.init(cfg, seed=0)
    graph, _ = pot.graph(eqlr_jax.Structure.from_ase(atoms), dtype=jnp.float32)
    compiled = predict.lower(cfg, pot.params, graph, compute_stress=True, runtime=runtime).compile()
    mem = compiled.memory_analysis()
    times = []
    for i in range(iters + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(pot.params, graph))
        if i:
            times.append(1e3 * (time.perf_counter() - t0))
    return dict(natoms=len(atoms), lmax=lmax, edge_block=runtime.edge_block,
                capacity_edges=graph.n_edge_capacity,
                temp_mb=round(mem.temp_size_in_bytes / 2**20, 1),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                model_ms=round(statistics.median(times), 1), threads=threads, jax=jax.__version__)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--natoms", type=int, default=4096)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--edge-blocks", default="none,32768,16384,4096",
                   help="comma-separated edge_block values ('none', 'auto' or ints)")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.natoms, args.lmax, args.one, args.iters, args.threads)), flush=True)
        return
    for eb in args.edge_blocks.split(","):
        cmd = [sys.executable, __file__, "--natoms", str(args.natoms), "--lmax", str(args.lmax),
               "--iters", str(args.iters), "--threads", str(args.threads), "--one", eb]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
