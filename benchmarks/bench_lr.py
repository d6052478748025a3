#!/usr/bin/env python
"""Benchmark of the long-range model against the short-range one, and of the QEq solvers.

Rattled rock-salt NaCl (``bench_sr.build_atoms``), float32, CPU. Three kinds of rows (JSON
lines on stdout):

* ``--rows ratio``: energy+forces of the LR model (2 + 2 interaction layers, r_max 5 Å), of
  the LR model at r_max 3 Å, and of the SR model (4 layers, r_max 5 Å, the same code with the
  long range off), compiled ahead of time and timed in alternating rounds in one process;
  ratios of the medians; ``--eta-factors`` adds LR rows with other Ewald splitting widths.
  ``host_graph_ms``: building the graph on the host (neighbour lists, long-range pairs and
  k-vectors), not part of ``model_ms``. ``kind = "lr_ratio"``.
* ``--rows qeq``: the QEq solve alone (operator + solve, forward) with the dense and the CG
  solver, at several sizes, with CG iteration counts at the model's tolerance.
  ``kind = "qeq"``.
* ``--rows profile``: where the LR time goes at one size: host graph building, stage-1
  network, Coulomb operator, forward solve, the adjoint solve, the whole energy, energy and
  forces. ``kind = "lr_profile"``.

    python benchmarks/bench_lr.py --rows ratio --natoms 1000 --rounds 7
    python benchmarks/bench_lr.py --rows qeq --sizes 64 216 512 1000 1728 4096
    python benchmarks/bench_lr.py --rows profile --natoms 1000
"""
import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_sr import build_atoms, cold_compiles, median_ms, pin_cores  # noqa: E402


def lr_config(r_max=5.0, long_range=True, layers=(2, 2), features=32, lmax=1):
    import eqlr_jax

    return eqlr_jax.LRConfig(species=("Na", "Cl"), r_max=r_max, l_max=lmax, num_features=features,
                             num_layers_charge=layers[0], num_layers=layers[1], long_range=long_range,
                             chi_reference=(0.93, 3.16), hardness_init=(5.0, 5.0))


def compiled_call(config, atoms, dtype="float32", runtime=None):
    """(compiled E+F call, params, graph, compile_s, host_graph_ms)."""
    import jax
    import jax.numpy as jnp

    import eqlr_jax
    from eqlr_jax import potential

    runtime = runtime or eqlr_jax.Runtime()
    pot = dataclasses.replace(eqlr_jax.Potential.init(config, seed=0), runtime=runtime)
    structure = eqlr_jax.Structure.from_ase(atoms)
    host_ms = median_ms(lambda: pot.graph(structure, dtype=jnp.dtype(dtype)), 1, 3)[0]
    graph, _ = pot.graph(structure, dtype=jnp.dtype(dtype))
    params = potential._cast_params(pot.params, jnp.dtype(dtype))
    t0 = time.perf_counter()
    call = jax.jit(lambda q, g: potential.predict.__wrapped__(config, q, g, compute_stress=False, runtime=runtime))
    compiled = call.lower(params, graph).compile()
    return compiled, params, graph, time.perf_counter() - t0, host_ms


def rows_ratio(args):
    import eqlr_jax

    atoms = build_atoms("nacl", args.natoms)
    variants = {
        "sr_r5_4": (lr_config(5.0, long_range=False, layers=(0, 4)), None),
        "lr_r5_2+2": (lr_config(5.0), None),
        "lr_r3_2+2": (lr_config(3.0), None),
    }
    for c in args.eta_factors:
        variants[f"lr_r5_2+2_eta{c:g}"] = (lr_config(5.0), eqlr_jax.Runtime(ewald_eta_factor=c))
    calls = {}
    for name, (cfg, runtime) in variants.items():
        f, p, g, c, host = compiled_call(cfg, atoms, runtime=runtime)
        out = f(p, g)
        extra = {}
        if "qeq_iterations" in out:
            extra = {"qeq_iterations": int(out["qeq_iterations"]), "qeq_residual": float(out["qeq_residual"]),
                     "lr_pairs": int(g.long_range.pair_mask.sum()), "kvectors": int(g.long_range.k_mask.sum())}
        calls[name] = (f, p, g, c, host, extra, int(g.edge_mask.sum()))
    times = {k: [] for k in calls}
    for _ in range(args.rounds):
        for name, (f, p, g, *_rest) in calls.items():
            times[name].append(median_ms(lambda: jax_block(f(p, g)), 1, args.iters)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, (f, p, g, c, host, extra, edges) in calls.items():
        row = {"kind": "lr_ratio", "variant": name, "natoms": len(atoms), "edges": edges, "dtype": "float32",
               "threads": len(os.sched_getaffinity(0)), "compile_s": round(c, 2), "host_graph_ms": round(host, 1),
               "model_ms": round(med[name], 2), "rounds_ms": [round(t, 2) for t in times[name]],
               "ratio_to_sr_r5_4": round(med[name] / med["sr_r5_4"], 3), **extra}
        print(json.dumps(row), flush=True)


def jax_block(out):
    import jax

    return jax.block_until_ready(out)


def rows_qeq(args):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import eqlr_jax
    from eqlr_jax import qeq
    from eqlr_jax.electrostatics import flat_operator
    from eqlr_jax.models import heads

    cfg = lr_config()
    pot = eqlr_jax.Potential.init(cfg, seed=0)
    for n in args.sizes:
        atoms = build_atoms("nacl", n)
        graph, _ = pot.graph(eqlr_jax.Structure.from_ase(atoms), dtype=jnp.float32)
        rng = np.random.default_rng(0)
        chi = jnp.asarray(np.where(atoms.numbers == 11, 0.93, 3.16) + 0.1 * rng.normal(size=len(atoms)),
                          jnp.float32)
        chi = jnp.zeros(graph.n_node_capacity, jnp.float32).at[:len(atoms)].set(chi)
        hard = jnp.full(graph.n_node_capacity, 5.0, jnp.float32)
        sig = heads.sigmas(cfg, pot.params["qeq"], graph.species, jnp.float32)
        dense_real = graph.n_node_capacity <= eqlr_jax.Runtime().dense_pairs_max_atoms
        for solver in args.solvers:
            if solver == "dense" and n > args.dense_max:
                continue

            def fn(pos, x, solver=solver):
                op = flat_operator(pos, graph.cell, sig, graph.node_graph, graph.node_mask, graph.long_range,
                                   dense_real=dense_real)
                return qeq.solve(op, x, hard, graph.total_charge, solver=solver, tol=cfg.qeq_tol)

            f = jax.jit(fn)
            t0 = time.perf_counter()
            res = jax_block(f(graph.positions, chi))
            compile_s = time.perf_counter() - t0
            ms = median_ms(lambda: jax_block(f(graph.positions, chi)), 1, args.iters)[0]
            print(json.dumps({"kind": "qeq", "solver": solver, "natoms": len(atoms), "dtype": "float32",
                              "threads": len(os.sched_getaffinity(0)), "tol": cfg.qeq_tol, "ms": round(ms, 2),
                              "first_call_s": round(compile_s, 2), "iterations": int(res.iterations),
                              "residual_eV_per_e": float(res.residual), "dense_pairs": dense_real,
                              "lr_pairs": int(graph.long_range.pair_mask.sum()),
                              "kvectors": int(graph.long_range.k_mask.sum())}), flush=True)


def rows_profile(args):
    import jax
    import jax.numpy as jnp

    import eqlr_jax
    from eqlr_jax import qeq
    from eqlr_jax.electrostatics import flat_operator
    from eqlr_jax.models import heads, lr_terms
    from eqlr_jax.nn import NequIP

    atoms = build_atoms("nacl", args.natoms)
    cfg = lr_config()
    pot = eqlr_jax.Potential.init(cfg, seed=0)
    runtime = eqlr_jax.Runtime()
    structure = eqlr_jax.Structure.from_ase(atoms)
    host = median_ms(lambda: pot.graph(structure, dtype=jnp.float32), 0, 3)[0]
    graph, _ = pot.graph(structure, dtype=jnp.float32)
    params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), pot.params)
    solver = runtime.qeq_method(graph.n_node_capacity)
    vec = graph.edge_vectors()
    args_nn = (graph.species, graph.senders, graph.receivers, graph.edge_mask)

    def stage1(v):
        _, f = NequIP(cfg.stage1(), runtime, readout=False).apply(params["stage1"], v, *args_nn)
        return heads.chi_head(cfg, params["chi"], f.array, graph.species)

    sig = heads.sigmas(cfg, params["qeq"], graph.species, jnp.float32)
    hard = heads.hardness(cfg, params["qeq"], graph.species)

    def operator(pos):
        return flat_operator(pos, graph.cell, sig, graph.node_graph, graph.node_mask, graph.long_range,
                             dense_real=graph.n_node_capacity <= runtime.dense_pairs_max_atoms)

    def solve(pos, chi):
        return qeq.solve(operator(pos), chi, hard, graph.total_charge, solver=solver, tol=cfg.qeq_tol)

    chi = jax.jit(stage1)(vec)
    w = jnp.linspace(-1.0, 1.0, graph.n_node_capacity, dtype=jnp.float32)
    steps = {
        "stage1_network_fwd": (jax.jit(stage1), (vec,)),
        "operator_fwd": (jax.jit(lambda p: operator(p).pair_kernel), (graph.positions,)),
        "operator_fwd_bwd": (jax.jit(jax.grad(lambda p: jnp.sum(operator(p).energies(w)))), (graph.positions,)),
        "solve_fwd": (jax.jit(lambda p, x: solve(p, x).charges), (graph.positions, chi)),
        "solve_fwd_adjoint": (jax.jit(jax.grad(lambda x, p: jnp.sum(w * solve(p, x).charges))), (chi, graph.positions)),
        "lr_energy_fwd": (jax.jit(lambda v, p: jnp.sum(lr_terms(cfg, params, graph, v, p, graph.cell, runtime)["energy"])),
                          (vec, graph.positions)),
    }
    full, p, g, _, _ = compiled_call(cfg, atoms)
    sr, ps, gs, _, _ = compiled_call(lr_config(5.0, long_range=False, layers=(0, 4)), atoms)
    row = {"kind": "lr_profile", "natoms": len(atoms), "dtype": "float32", "solver": solver,
           "threads": len(os.sched_getaffinity(0)), "host_graph_ms": round(host, 1),
           "iterations": int(solve(graph.positions, chi).iterations)}
    for name, (f, a) in steps.items():
        jax_block(f(*a))
        row[name + "_ms"] = round(median_ms(lambda: jax_block(f(*a)), 1, args.iters)[0], 2)
    row["lr_energy_forces_ms"] = round(median_ms(lambda: jax_block(full(p, g)), 1, args.iters)[0], 2)
    row["sr_r5_4_energy_forces_ms"] = round(median_ms(lambda: jax_block(sr(ps, gs)), 1, args.iters)[0], 2)
    print(json.dumps(row), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", choices=["ratio", "qeq", "profile"], required=True)
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 216, 512, 1000, 1728, 4096])
    p.add_argument("--solvers", nargs="+", default=["dense", "cg"])
    p.add_argument("--dense-max", type=int, default=4096, help="largest size timed with the dense solver")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--eta-factors", type=float, nargs="*", default=[],
                   help="ratio rows: also time the LR model with these Runtime.ewald_eta_factor values")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="CPU cores to use (0: all available)")
    args = p.parse_args(argv)
    pin_cores(args.threads)
    cold_compiles()
    {"ratio": rows_ratio, "qeq": rows_qeq, "profile": rows_profile}[args.rows](args)


if __name__ == "__main__":
    main()
