#!/usr/bin/env python
"""Benchmark of the short-range NequIP potential: one configuration per run, one JSON line.

Times jitted energy+forces (the model on a pre-built padded graph) and, unless --skip-ase,
the end-to-end ASE calculator (neighbour list + graph + model), on the same structures as
``benchmarks/peer_nequip.py``: rock-salt NaCl ``bulk('NaCl', a=5.64, cubic=True)``
repeated k×k×k (k = round((N/8)^(1/3))), rattled 0.05 Å with seed 0; or the C10H2 chain.

Hyperparameters match the peer: r_max 5 Å, 32 features per irrep with both parities
(``32x0e+32x0o+32x1o+32x1e`` at l_max 1), 4 layers, 8 Bessel functions, p = 6, radial MLP
2 × 64. Run it in a fresh process per configuration (peak RSS is per process):

    python benchmarks/bench_sr.py --natoms 1000 --lmax 1 --threads 1
    python benchmarks/bench_sr.py --all > benchmarks/results/sr.jsonl   # the issue-2 matrix

Output fields: ``model_ms`` (median jitted E+F), ``ase_ms`` (median calculator call),
``nl_ms`` (neighbour list + graph building), ``compile_s`` (first call), ``us_per_atom``,
``edges`` (directed), ``peak_rss_mb`` (process maximum resident set), ``n_params``.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def build_atoms(system: str, natoms: int, rattle: float = 0.05, seed: int = 0):
    import ase.build

    if system == "nacl":
        k = max(1, round((natoms / 8.0) ** (1.0 / 3.0)))
        atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((k, k, k))
        atoms.rattle(stdev=rattle, seed=seed)
        return atoms
    if system == "chain":
        symbols = ["H"] + ["C"] * 10 + ["H"]
        bonds = [1.06] + [1.21 if i % 2 == 0 else 1.33 for i in range(9)] + [1.06]
        x = [0.0]
        for b in bonds:
            x.append(x[-1] + b)
        atoms = ase.Atoms(symbols, positions=[[xi, 0.0, 0.0] for xi in x])
        atoms.center(vacuum=10.0)
        return atoms
    raise ValueError(f"unknown system {system!r}")


def pin_cores(n: int) -> None:
    """Pin this process to its first ``n`` allowed cores (CPU affinity; 0: leave as is). Call it
    before importing jax: XLA's CPU thread pool is sized from the affinity mask. Also turns JAX's
    persistent compilation cache off, so that compile times are cold even where the user has
    set one up (``JAX_COMPILATION_CACHE_DIR``, :func:`eqlr_jax.enable_compilation_cache`)."""
    if n:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:n]))
    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    if "jax" in sys.modules:
        cold_compiles()


def cold_compiles() -> None:
    """JAX's persistent compilation cache off for the rest of this process (JAX decides at the
    first compile after a reset, so reset too)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()


def fresh_process_parser(doc: str, runs: int, runs_help: str) -> argparse.ArgumentParser:
    """Options of the scripts that time the first call in fresh processes: --natoms, --lmax,
    --threads (default 1; 0: all available cores), --runs."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="CPU cores to use (0: all available)")
    p.add_argument("--runs", type=int, default=runs, help=runs_help)
    return p


def python_json(code: str) -> dict:
    """Run ``code`` in a fresh Python process; its last stdout line, parsed as JSON. Exits with
    the end of its stderr if it fails."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_ms(fn, warmup: int, iters: int):
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(1e3 * (time.perf_counter() - t0))
        cpu.append(1e3 * (time.process_time() - c0))
    return statistics.median(wall), statistics.median(cpu), wall


def parse_edge_block(text: str):
    """``Runtime.edge_block`` from the command line: an int, ``auto`` or ``none``."""
    return text if text == "auto" else (None if text == "none" else int(text))


def edge_block_runtime(text: str):
    """The default ``eqlr_jax.Runtime`` with the command line's edge_block (:func:`parse_edge_block`)."""
    import eqlr_jax

    return eqlr_jax.Runtime(edge_block=parse_edge_block(text))


def compile_call(atoms, lmax: int, dtype: str = "float32", package: str = "eqlr_jax", params=None,
                 runtime=None, **config):
    """The race's energy + forces + stress call on ``atoms`` (species Na, Cl; r_max 5 Å; other
    ``NequIPConfig`` fields from ``config``), compiled ahead of time, with float parameters cast
    to ``dtype``. Returns ``(compiled, params, graph, compile_s)``; run it as
    ``compiled(params, graph)``. ``runtime``: the ``eqlr_jax.Runtime`` to compile it with
    (default: the library's default). ``package``: the module to take eqlr_jax from (another
    revision, see ``ab_revision.py``; with ``runtime=None`` this works for revisions from before
    ``eqlr_jax.Runtime`` too); ``params``: use these instead of ``Potential.init``'s."""
    import importlib

    import jax
    import jax.numpy as jnp

    cold_compiles()
    eqlr_jax = importlib.import_module(package)
    potential = importlib.import_module(package + ".potential")
    speed = {} if runtime is None else {"runtime": runtime}

    cfg = eqlr_jax.NequIPConfig(species=("Na", "Cl"), r_max=5.0, l_max=lmax, **config)
    pot = eqlr_jax.Potential.init(cfg, seed=0)
    graph, _ = pot.graph(eqlr_jax.Structure.from_ase(atoms), dtype=jnp.dtype(dtype))
    params = potential._cast_params(pot.params if params is None else params, jnp.dtype(dtype))
    t0 = time.perf_counter()
    call = jax.jit(lambda q, g: potential.predict.__wrapped__(cfg, q, g, compute_stress=True, **speed))
    compiled = call.lower(params, graph).compile()
    return compiled, params, graph, time.perf_counter() - t0


def run_one(args) -> dict:
    pin_cores(args.threads)
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    if args.matmul_precision:
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    import jax.numpy as jnp
    import numpy as np

    import eqlr_jax

    atoms = build_atoms(args.system, args.natoms)
    species = ("Na", "Cl") if args.system == "nacl" else ("C", "H")
    config = eqlr_jax.NequIPConfig(species=species, r_max=args.r_max, l_max=args.lmax,
                                   num_features=args.features, num_layers=args.layers,
                                   parity=not args.no_parity)
    pot = eqlr_jax.Potential.init(config, seed=0)
    structure = eqlr_jax.Structure.from_ase(atoms)
    graph, need = pot.graph(structure, dtype=jnp.dtype(args.dtype))
    periodic = bool(np.all(atoms.pbc))

    def model():
        out = pot(graph, compute_stress=periodic)
        jax.block_until_ready((out["energy"], out["forces"]))

    t0 = time.perf_counter()
    model()
    compile_s = time.perf_counter() - t0
    model_ms, model_cpu_ms, all_model = median_ms(model, args.warmup, args.iters)

    row = dict(code="eqlr_jax", system=args.system, natoms=len(atoms), edges=int(np.sum(np.asarray(graph.edge_mask))),
               lmax=args.lmax, features=args.features, layers=args.layers, parity=not args.no_parity,
               dtype=args.dtype, threads=args.threads or len(os.sched_getaffinity(0)),
               n_params=pot.num_params(), compile_s=round(compile_s, 3), model_ms=round(model_ms, 3),
               model_cpu_ms=round(model_cpu_ms, 3), us_per_atom=round(1e3 * model_ms / len(atoms), 3),
               capacity_nodes=graph.n_node_capacity, capacity_edges=graph.n_edge_capacity)
    if not args.skip_ase:
        from eqlr_jax.graph import build_graph
        from eqlr_jax.neighbors import neighbor_list

        calc = pot.calculator(dtype=args.dtype)
        atoms.calc = calc

        def ase_call():
            calc.reset()
            atoms.get_potential_energy()
            atoms.get_forces()

        def nl_call():
            s = eqlr_jax.Structure.from_ase(atoms)
            build_graph(s, pot.cutoff, pot.species, capacity=calc.capacity, dtype=calc.dtype,
                        edges=[neighbor_list(s, pot.cutoff)])

        ase_call()
        row["ase_ms"] = round(median_ms(ase_call, args.warmup, args.iters)[0], 3)
        row["nl_ms"] = round(median_ms(nl_call, 1, args.iters)[0], 3)
        row["ase_compiles"] = calc.n_compiles
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["loadavg_1min"] = round(os.getloadavg()[0], 2)
    row["jax"] = jax.__version__
    row["device"] = jax.devices()[0].device_kind
    row["energy"] = float(np.asarray(pot(graph, compute_stress=periodic)["energy"]).ravel()[0])
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        row["gpu_peak_mb"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
    if args.all_times:
        row["model_ms_all"] = [round(t, 3) for t in all_model]
    return row


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--system", default="nacl", choices=["nacl", "chain"])
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--r-max", type=float, default=5.0)
    p.add_argument("--no-parity", action="store_true")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=0, help="CPU cores to use (0: all available)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--skip-ase", action="store_true")
    p.add_argument("--all-times", action="store_true")
    p.add_argument("--matmul-precision", default=None, choices=["highest", "high", "default"],
                   help="jax_default_matmul_precision (on a GPU, 'default' allows TF32)")
    p.add_argument("--all", action="store_true",
                   help="run the issue-2 matrix (NaCl 64/512/1000/4096 × l_max 1, 2), one subprocess each")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.all:
        for lmax in (1, 2):
            for n in (64, 512, 1000, 4096):
                cmd = [sys.executable, __file__, "--natoms", str(n), "--lmax", str(lmax), "--dtype", args.dtype,
                       "--threads", str(args.threads), "--iters", str(args.iters), "--warmup", str(args.warmup)]
                if args.skip_ase:
                    cmd.append("--skip-ase")
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                print(out.strip().splitlines()[-1], flush=True)
        return
    print(json.dumps(run_one(args)), flush=True)


if __name__ == "__main__":
    main()
