#!/usr/bin/env python
"""Training throughput: structures per second of the training step (energy + force loss,
backward, optimizer update), SR and LR, float32 and float64, with the compile count per
epoch; and the speed-up of a vmapped ensemble of K models over K sequential models.

The systems are the carbon chain (the demo's bundled data) and the Na9Cl8+ cluster
(``--nacl``, default ``../shared/data/xtb/nacl_Na9Cl8p.xyz``). One JSON line per measurement:

    python benchmarks/bench_train.py --frames 64 --epochs 3 > benchmarks/results/train.jsonl
    python benchmarks/bench_train.py --ensemble 4 --systems chain > benchmarks/results/train_ensemble.jsonl
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_sr import cold_compiles, pin_cores  # noqa: E402


def _frames(system: str, n: int, nacl_path: str):
    from eqlr_jax.demo import data_path
    from eqlr_jax.train import load_frames

    path = data_path() if system == "chain" else nacl_path
    return load_frames(path)[:n]


def _setup(frames, system: str, kind: str, dtype, batch_size: int, ensemble: int = 0):
    import numpy as np

    from eqlr_jax.models import LRConfig, init_params, long_range_spec
    from eqlr_jax.train import LossWeights
    from eqlr_jax.train.batches import BatchMaker
    from eqlr_jax.train.steps import Steps, make_optimizer

    species = tuple(sorted({int(z) for f in frames for z in f.structure.numbers}))
    layers = dict(num_layers=2) if kind == "sr" else dict(num_layers_charge=1, num_layers=1)
    cfg = LRConfig(species=species, r_max=3.0 if system == "chain" else 5.0, num_features=32, long_range=kind == "lr",
                   **layers)
    maker = BatchMaker(frames, cfg.r_max, cfg.species, long_range_spec(cfg), batch_size, dtype, levels=3)
    steps = Steps(cfg, LossWeights(charges=1.0 if kind == "lr" else 0.0), make_optimizer("amsgrad", 10.0), 0.99,
                  ensemble=ensemble)
    params = [init_params(cfg, s, np.dtype(dtype)) for s in range(max(ensemble, 1))]
    return maker, steps, steps.init_state(params if ensemble else params[0])


def _epochs(maker, steps, state, epochs, dtype):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from eqlr_jax.train.trainer import _bootstrap_weights

    lr = jnp.asarray(1e-3, dtype)
    order = np.arange(len(maker.frames))
    ones = np.ones((steps.ensemble, len(order))) if steps.ensemble else None
    for e in range(epochs):
        for idx in maker.batches(np.random.default_rng(e).permutation(order)):
            g, t = maker.make(idx)
            extra = () if ones is None else (_bootstrap_weights(ones, idx, g, dtype),)
            state, loss, _ = steps.train(state, g, t, lr, *extra)
    jax.block_until_ready(state)
    return state


def throughput(args):
    import numpy as np

    for system in args.systems:
        frames = _frames(system, args.frames, args.nacl)
        for kind in args.kinds:
            for dtype in args.dtypes:
                if dtype == "float64":
                    import jax

                    jax.config.update("jax_enable_x64", True)
                maker, steps, state = _setup(frames, system, kind, np.dtype(dtype), args.batch_size)
                t0 = time.perf_counter()
                state = _epochs(maker, steps, state, 1, dtype)  # compiles
                warm_s = time.perf_counter() - t0
                compiles_first = steps.compiles["train"]
                t0 = time.perf_counter()
                state = _epochs(maker, steps, state, args.epochs, dtype)
                dt = time.perf_counter() - t0
                print(json.dumps({"kind": "train_throughput", "system": system, "model": kind, "dtype": dtype,
                                  "frames": len(frames), "atoms_per_frame": round(np.mean([f.n_atoms for f in frames]), 1),
                                  "batch_size": args.batch_size, "threads": len(os.sched_getaffinity(0)),
                                  "structures_per_s": round(args.epochs * len(frames) / dt, 1),
                                  "first_epoch_s": round(warm_s, 2), "compiles_first_epoch": compiles_first,
                                  "compiles_later_epochs": steps.compiles["train"] - compiles_first,
                                  "capacities": len(maker.plan)}), flush=True)


def ensemble_speedup(args):
    import numpy as np

    for system in args.systems:
        frames = _frames(system, args.frames, args.nacl)
        for kind in args.kinds:
            dtype = np.dtype("float32")
            times = {}
            for label, k in (("single", 0), ("ensemble", args.ensemble)):
                maker, steps, state = _setup(frames, system, kind, dtype, args.batch_size, ensemble=k)
                state = _epochs(maker, steps, state, 1, dtype)
                t0 = time.perf_counter()
                _epochs(maker, steps, state, args.epochs, dtype)
                times[label] = time.perf_counter() - t0
            print(json.dumps({"kind": "train_ensemble", "system": system, "model": kind, "dtype": "float32",
                              "K": args.ensemble, "frames": len(frames), "single_epoch_s": round(times["single"] / args.epochs, 3),
                              "ensemble_epoch_s": round(times["ensemble"] / args.epochs, 3),
                              "speedup_over_sequential": round(args.ensemble * times["single"] / times["ensemble"], 2)}),
                  flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--systems", nargs="+", default=["chain", "nacl"], choices=["chain", "nacl"])
    p.add_argument("--kinds", nargs="+", default=["sr", "lr"], choices=["sr", "lr"])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ensemble", type=int, default=0, help="measure the ensemble speed-up for this K instead")
    p.add_argument("--nacl", default=os.path.join(ROOT, "..", "shared", "data", "xtb", "nacl_Na9Cl8p.xyz"))
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    pin_cores(args.threads)
    cold_compiles()
    (ensemble_speedup if args.ensemble else throughput)(args)


if __name__ == "__main__":
    main()
