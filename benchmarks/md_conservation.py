#!/usr/bin/env python
"""NVE energy conservation of jax-md MD with the NequIP-LR model, against the QEq solver and its
tolerance, in float64, float32 or mixed precision (float32 networks, float64 positions, QEq and
electrostatics: ``Runtime(network_dtype="float32")``; one process per dtype: x64 is process-wide).

The systems and the untrained smooth model are those of ``tests/test_md.py`` (Na9Cl8+ cluster,
64-atom rattled NaCl cell, a soft-sphere core added through jax-md). For each solver setting:
velocity Verlet at ``--dt`` fs for ``--steps`` steps, QEq warm-started from the previous step;
the drift (slope of a linear fit of the total energy, eV/atom/ps) and the fluctuation about it
(eV/atom), the largest QEq residual (eV/e), mean CG iterations and ms per step (CPU, after
compilation). One JSON line per setting:

    python benchmarks/md_conservation.py --system cluster --solvers dense cg:1e-3 cg:1e-4 cg:1e-6 cg:1e-8 cg:1e-10
    python benchmarks/md_conservation.py --system nacl64 --dtype float32 --solvers dense cg:1e-6
    python benchmarks/md_conservation.py --system cluster --dtype mixed --solvers dense cg:1e-6
"""
import argparse
import dataclasses
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]  # this tree's eqlr_jax, the tests' systems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=("cluster", "nacl64"), default="cluster")
    p.add_argument("--dtype", choices=("float32", "float64", "mixed"), default="float64")
    p.add_argument("--solvers", nargs="+", default=["dense", "cg:1e-6", "cg:1e-10"],
                   help="dense, or cg:TOL (the model's relative qeq_tol)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--dt", type=float, default=0.5, help="fs")
    args = p.parse_args(argv)

    import jax

    if args.dtype in ("float64", "mixed"):
        jax.config.update("jax_enable_x64", True)
    import numpy as np

    from eqlr_jax.md import Dynamics

    import test_md as sysdef  # the systems and the smooth model of the tests

    atoms = sysdef.na9cl8() if args.system == "cluster" else sysdef.nacl64()
    dtype = np.float32 if args.dtype == "float32" else np.float64
    for setting in args.solvers:
        solver, _, tol = setting.partition(":")
        cfg = dataclasses.replace(sysdef.CFG, qeq_tol=float(tol)) if tol else sysdef.CFG
        pot = sysdef.smooth_potential(cfg, solver=solver, dtype=dtype)
        if args.dtype == "mixed":
            pot = dataclasses.replace(pot, runtime=dataclasses.replace(pot.runtime, network_dtype="float32"))
        dyn = Dynamics(pot, atoms, "nve", dt_fs=args.dt, temperature_K=300, chunk=args.steps,
                       extra_energy=sysdef.repulsion, dtype=dtype)
        state, nbrs = dyn.init()
        walls, records = [], []
        state, nbrs = dyn.run(state, nbrs, args.steps, lambda s, n, c: (walls.append(c.wall), records.append(c)))
        # a second run of the same length, compiled already: the time per step
        t0 = time.perf_counter()
        dyn.run(state, nbrs, args.steps)
        ms = 1e3 * (time.perf_counter() - t0) / args.steps
        rec = records[0].records
        drift, fluct = sysdef.drift_and_fluctuation(rec["conserved"].astype(np.float64), args.dt, len(atoms))
        print(json.dumps({
            "kind": "md_conservation", "system": args.system, "natoms": len(atoms), "dtype": args.dtype,
            "solver": solver, "qeq_tol": cfg.qeq_tol if solver == "cg" else None, "steps": args.steps,
            "dt_fs": args.dt, "drift_eV_per_atom_ps": float(drift), "fluct_eV_per_atom": float(fluct),
            "max_qeq_residual": float(rec["qeq_residual"].max()),
            "mean_cg_iterations": float(rec["qeq_iterations"].mean()), "ms_per_step": round(ms, 3),
            "first_run_s": round(walls[0], 2), "device": jax.devices()[0].platform}), flush=True)


if __name__ == "__main__":
    main()
