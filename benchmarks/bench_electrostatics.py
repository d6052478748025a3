#!/usr/bin/env python
"""Benchmark of the Ewald sum against system size (rock-salt NaCl, rattled 0.05 Å, seed 0).

For each size it times (median of --iters calls after a warm-up, jitted):

* ``ef_ms``: energy + forces (value_and_grad in positions) from scratch,
* ``potential_ms``: phi = M q from scratch (``ewald_potential``),
* ``op_build_ms`` / ``op_matvec_ms``: precomputing ``ewald_operator`` once, then one mat-vec
  (the QEq inner loop),
* ``dense_build_ms`` / ``dense_matvec_ms``: building the dense M, then one M @ q (sizes up
  to --dense-max),

plus the Ewald parameters (eta, r_cut, pairs, k-vectors) and the error against a tighter
reference (accuracy 1e-10). The fitted exponent b of t ∝ N^b uses the sizes >= 512.
Writes JSON (--out) and prints a Markdown table.

    python benchmarks/bench_electrostatics.py --out benchmarks/results/electrostatics.json
"""
import argparse
import functools
import json
import math
import os
import platform
import statistics
import time

import numpy as np


def nacl(natoms):
    """Positions, cell and ±1 charges of the same rattled NaCl as the SR benchmark."""
    from bench_sr import build_atoms

    atoms = build_atoms("nacl", natoms)
    q = np.where(atoms.numbers == 11, 1.0, -1.0)
    return atoms.positions, np.asarray(atoms.cell[:]), q


def timed(fn, iters):
    import jax

    jax.block_until_ready(fn())
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(ts)


def run(sizes, accuracy, iters, dense_max, dtype):
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from eqlr_jax import electrostatics as es

    dt = jnp.dtype(dtype)
    ef = jax.jit(jax.value_and_grad(es.ewald_energy))
    pot = jax.jit(es.ewald_potential)
    op_fn = jax.jit(es.ewald_operator)
    mv = jax.jit(lambda o, q: o.matvec(q))
    dense = jax.jit(es.ewald_matrix)
    dmv = jax.jit(lambda m, q: m @ q)
    rows = []
    for n in sizes:
        pos_np, cell_np, q_np = nacl(n)
        setup = es.prepare_ewald(cell_np, len(q_np), 0.0, accuracy)
        data = setup.build(pos_np)
        pos, cell, q = (jnp.asarray(x, dt) for x in (pos_np, cell_np, q_np))
        sig = jnp.zeros(len(q_np), dt)
        ref = es.coulomb_energy(pos_np, q_np, 0.0, cell_np, accuracy=1e-10)
        e = float(ef(pos, cell, sig, q, data)[0])
        row = dict(natoms=len(q_np), eta=setup.eta, r_cut=setup.r_cut, k_cut=setup.k_cut,
                   pairs=int(data.pairs.n_found), pair_capacity=setup.pair_capacity,
                   kvectors=len(setup.miller), rel_error=abs(e / ref - 1))
        row["ef_ms"] = timed(lambda: ef(pos, cell, sig, q, data), iters)
        row["potential_ms"] = timed(lambda: pot(pos, cell, sig, q, data), iters)
        row["op_build_ms"] = timed(lambda: op_fn(pos, cell, sig, data), iters)
        row["op_matvec_ms"] = timed(functools.partial(mv, op_fn(pos, cell, sig, data), q), iters)
        if len(q_np) <= dense_max:
            row["dense_build_ms"] = timed(lambda: dense(pos, cell, sig, data), max(1, iters // 2))
            m = dense(pos, cell, sig, data)
            row["dense_matvec_ms"] = timed(lambda: dmv(m, q), iters)
            del m
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def fit_exponent(rows, key, nmin=512):
    pts = [(r["natoms"], r[key]) for r in rows if r["natoms"] >= nmin and key in r]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def table(rows):
    head = ("| atoms | pairs | k-vectors | rel. error | E+F ms | phi ms | operator build ms | "
            "operator mat-vec ms | dense build ms | dense mat-vec ms |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        f = lambda k: f"{r[k]:.2f}" if k in r else "–"  # noqa: E731
        lines.append(f"| {r['natoms']} | {r['pairs']} | {r['kvectors']} | {r['rel_error']:.1e} | {f('ef_ms')} | "
                     f"{f('potential_ms')} | {f('op_build_ms')} | {f('op_matvec_ms')} | {f('dense_build_ms')} | "
                     f"{f('dense_matvec_ms')} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 216, 512, 1000, 2744, 4096, 8000])
    p.add_argument("--accuracy", type=float, default=1e-6)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--dense-max", type=int, default=4096)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    rows = run(a.sizes, a.accuracy, a.iters, a.dense_max, a.dtype)
    import jax

    summary = dict(
        benchmark="ewald_nacl", accuracy=a.accuracy, dtype=a.dtype, jax=jax.__version__,
        device=jax.devices()[0].device_kind, cpus=len(os.sched_getaffinity(0)), machine=platform.processor(),
        exponent_ef=fit_exponent(rows, "ef_ms"), exponent_op_matvec=fit_exponent(rows, "op_matvec_ms"),
        exponent_potential=fit_exponent(rows, "potential_ms"),
        dense_matvec_faster_up_to=max([r["natoms"] for r in rows
                                       if r.get("dense_matvec_ms", math.inf) < r["op_matvec_ms"]], default=None),
        rows=rows)
    print(table(rows))
    fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"fitted exponent (N >= 512): E+F {fmt(summary['exponent_ef'])}, "
          f"operator mat-vec {fmt(summary['exponent_op_matvec'])}, phi {fmt(summary['exponent_potential'])}")
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as fh:
            json.dump(summary, fh, indent=1)


if __name__ == "__main__":
    main()
