#!/usr/bin/env python
"""Inference time per structure (energy + forces, one structure per call, compiled, median of
``--iters`` calls) of every model in ``experiments/models/``, on the first test frame of its
dataset; SR and LR alternate within one process so that they see the same machine load.
Writes ``experiments/results/inference.json``.

    python experiments/inference.py [--iters 50]
"""
import argparse
import glob
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matrix import HERE, parse_run_name  # noqa: E402
from physics import _split  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    import jax

    import eqlr_jax

    calls = {}
    for path in sorted(glob.glob(os.path.join(HERE, "models", "*.eqlr"))):
        name = os.path.basename(path)[:-5]
        dataset, _ = parse_run_name(name)
        pot = eqlr_jax.load(path)
        frames, splits = _split(dataset)
        g, _ = pot.graph(frames[splits["test"][0]].structure)
        fn = lambda pot=pot, g=g: jax.block_until_ready(pot(g, compute_stress=False)["forces"])  # noqa: E731
        fn()
        calls[name] = fn
    times = {k: [] for k in calls}
    for _ in range(args.rounds):  # alternate the models: the same load for all
        for k, fn in calls.items():
            for _ in range(args.iters // args.rounds):
                t0 = time.perf_counter()
                fn()
                times[k].append(1e3 * (time.perf_counter() - t0))
    device = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind}, {os.cpu_count()} cores)"
    out = {"inference": {k: {"ms_per_structure": statistics.median(v), "device": device} for k, v in times.items()}}
    with open(os.path.join(HERE, "results", "inference.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    for k, v in out["inference"].items():
        print(f"{k:28s} {v['ms_per_structure']:8.2f} ms")


if __name__ == "__main__":
    main()
