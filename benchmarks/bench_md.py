#!/usr/bin/env python
"""MD throughput: steps/s and atom-steps/s of jax-md driving the SR and LR models, against the
ASE calculator driving ASE's velocity Verlet with the same model, in one process.

Systems: molten NaCl (rock salt at the liquid's density, a = 6.30 Å, rattled by 0.25 Å; 1000
atoms = 5^3 cubic cells, ``--natoms`` picks the nearest cube), and the first frame of the
66-atom Au2/MgO(001) slab of ``../shared/data/xtb/au2_mgo.xyz`` (``--slab``; periodic in 3-D with
8 Å of vacuum each side, as the data, at 300 K). Models (untrained, float32 unless ``--dtype``): SR NequIP (4 layers, r_max 5 Å)
and NequIP-LR (2 + 2 layers, r_max 5 Å), both 32 features, l_max 1, as in ``bench_lr.py``.

For each system and model: the jax-md NVE step (``eqlr_jax.md.Dynamics``, ``--chunk`` steps
per jitted ``fori_loop``, QEq warm-started, lists checked after each chunk), timed as the median
chunk over ``--rounds`` chunks after a compiling one; then (``--ase-steps`` > 0) ASE's
``VelocityVerlet`` with ``potential.calculator()``, the median of ``--ase-steps`` steps after two
warm-up steps. ``ratio = jax_md_ms / ase_ms`` (issue goal: at most 0.5 at 1000 atoms on CPU).

Where each step's time goes (``--rounds`` calls each, medians, same process):

* ``force_ms``: the jax-md energy and forces alone (one jitted ``value_and_grad`` of the
  energy function at fixed lists): no driver can step faster than this with this model, so
  ``floor_ratio = force_ms / ase_ms`` is the lowest ``ratio`` any jax-md driver could reach;
* ``update_ms`` and ``rebuild_ms``: the lists' update at the end of a step, without and with
  a rebuild (``--cell-list`` picks how a rebuild enumerates pairs);
* ``ase_model_ms``: the model call inside the ASE step (``potential(graph)`` on the graph that
  the calculator built), and ``ase_host_ms = ase_ms - ase_model_ms``: ASE's per-step host work
  (neighbour lists, graph, transfers, the Verlet update), the most that a jitted driver saves.

One JSON line per (system, model) on stdout, ``kind = "md"``:

    python benchmarks/bench_md.py --natoms 1000 --models sr lr            # CPU, with ASE
    python benchmarks/bench_md.py --natoms 10648 --ase-steps 0 --rounds 3 --chunk 5
    python benchmarks/bench_md.py --slab ../shared/data/xtb/au2_mgo.xyz --natoms 0
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

from bench_sr import pin_cores  # noqa: E402


def molten_nacl(natoms: int, seed: int = 0):
    import ase.build

    k = max(1, round((natoms / 8.0) ** (1.0 / 3.0)))
    atoms = ase.build.bulk("NaCl", "rocksalt", a=6.30, cubic=True).repeat((k, k, k))
    atoms.rattle(stdev=0.25, seed=seed)
    atoms.info.update(total_charge=0.0, temperature_K=1200.0)
    return atoms


def model(kind: str, species, dtype):
    import eqlr_jax

    long_range = kind == "lr"
    cfg = eqlr_jax.LRConfig(species=tuple(species), r_max=5.0, l_max=1, num_features=32,
                            num_layers_charge=2 if long_range else 0, num_layers=2 if long_range else 4,
                            long_range=long_range, hardness_init=(5.0,) * len(species))
    return eqlr_jax.Potential.init(cfg, seed=0, dtype=dtype)


def hot(atoms):
    """A copy with Maxwell-Boltzmann velocities at ``atoms.info["temperature_K"]``."""
    import numpy as np
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = atoms.copy()
    thermalize_momenta(atoms, temperature_K=atoms.info["temperature_K"], rng=np.random.default_rng(0))
    return atoms


def median_ms(fn, args, rounds):
    """Median wall time of ``fn(*args)`` over ``rounds`` calls after a compiling one, ms."""
    import jax

    jax.block_until_ready(fn(*args))
    walls = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        walls.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(walls)


def time_jax_md(pot, atoms, args, dtype):
    import jax

    from eqlr_jax.md import Dynamics

    cell_list = {"auto": "auto", "on": True, "off": False}[args.cell_list]
    dyn = Dynamics(pot, hot(atoms), "nve", dt_fs=args.dt, chunk=args.chunk, dtype=dtype, cell_list=cell_list)
    t0 = time.perf_counter()
    state, nbrs = dyn.init()
    walls, iters = [], []
    state, nbrs = dyn.run(state, nbrs, args.chunk, lambda s, n, c: None)  # compiles
    first = time.perf_counter() - t0
    for _ in range(args.rounds):
        state, nbrs = dyn.run(state, nbrs, args.chunk,
                              lambda s, n, c: (walls.append(c.wall), iters.append(float(c.records["qeq_iterations"].mean()))))
    ms = 1e3 * statistics.median(walls) / args.chunk
    guess = state.charges if pot.long_range else None
    energy = lambda r, nb: dyn.fns.terms_fn(r, nb, charges_guess=guess)["energy"]  # noqa: E731
    force_ms = median_ms(jax.jit(jax.value_and_grad(energy)), (state.md.position, nbrs), args.rounds)
    update = jax.jit(lambda r, nb: nb.update(r))
    rebuild = jax.jit(lambda r, nb: nb.update(r, rebuild=True))
    lists = {"update_ms": median_ms(update, (state.md.position, nbrs), args.rounds),
             "rebuild_ms": median_ms(rebuild, (state.md.position, nbrs), args.rounds)}
    return {"jax_md_ms": ms, "force_ms": force_ms, **lists, "jax_md_first_chunk_s": first,
            "reallocations": dyn.reallocations,
            "qeq_iterations": statistics.mean(iters) if pot.long_range else 0.0,
            "capacities": list(nbrs.capacities), "bin_capacities": list(nbrs.bin_capacities)}


def time_ase(pot, atoms, args):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from eqlr_jax.graph import build_graph, long_range_parts
    from eqlr_jax.models import long_range_spec
    from eqlr_jax.structure import Structure

    atoms = hot(atoms)
    atoms.calc = pot.calculator()
    md = VelocityVerlet(atoms, timestep=args.dt * units.fs)
    md.run(2)  # compile and settle the capacities
    walls = []
    for _ in range(args.ase_steps):
        t0 = time.perf_counter()
        md.run(1)
        walls.append(1e3 * (time.perf_counter() - t0))
    ase_ms = statistics.median(walls)
    # the model call of the step alone, on the graph the calculator builds at these positions
    calc = atoms.calc
    structure = Structure.from_ase(atoms)
    spec = long_range_spec(pot.config, pot.runtime)
    parts = None if spec is None else long_range_parts([structure], pot.species, spec)
    graph, _ = build_graph(structure, pot.cutoff, pot.species, capacity=calc.capacity, dtype=calc.dtype,
                           long_range=spec, parts=parts)
    guess = calc._guess if spec is not None else None
    periodic = bool(structure.pbc.all())
    model_ms = median_ms(lambda g: pot(g, compute_stress=periodic, charges_guess=guess)["forces"], (graph,),
                         max(args.rounds, 10))
    return {"ase_ms": ase_ms, "ase_model_ms": model_ms, "ase_host_ms": ase_ms - model_ms}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--natoms", type=int, nargs="+", default=[1000], help="molten NaCl sizes (0: none)")
    p.add_argument("--slab", default=None, help="an extxyz file whose first frame is a slab to run as well")
    p.add_argument("--models", nargs="+", choices=("sr", "lr"), default=["sr", "lr"])
    p.add_argument("--dtype", choices=("float32", "float64", "mixed"), default="float32",
                   help="mixed: float64 positions, QEq and electrostatics, float32 networks")
    p.add_argument("--chunk", type=int, default=20, help="steps per jitted chunk")
    p.add_argument("--rounds", type=int, default=5, help="timed chunks")
    p.add_argument("--ase-steps", type=int, default=10, help="timed ASE steps (0: skip ASE)")
    p.add_argument("--dt", type=float, default=1.0, help="time step, fs")
    p.add_argument("--threads", type=int, default=0, help="pin to this many cores (0: all)")
    p.add_argument("--cell-list", choices=("auto", "on", "off"), default="auto",
                   help="list rebuilds through bins (cell list): the Dynamics default 'auto', always, never")
    args = p.parse_args(argv)
    pin_cores(args.threads)

    import jax

    if args.dtype in ("float64", "mixed"):
        jax.config.update("jax_enable_x64", True)
    import ase.data
    import ase.io
    import numpy as np

    dtype = np.float32 if args.dtype == "float32" else np.float64
    systems = [(f"molten_nacl_{len(a)}", a) for a in (molten_nacl(n) for n in args.natoms if n > 0)]
    if args.slab:
        slab = ase.io.read(args.slab, index=0)
        slab.info.setdefault("total_charge", 0.0)
        slab.info["temperature_K"] = 300.0
        systems.append((f"slab_{os.path.basename(args.slab).split('.')[0]}_{len(slab)}", slab))
    for name, atoms in systems:
        species = sorted(set(atoms.get_chemical_symbols()), key=lambda s: ase.data.atomic_numbers[s])
        for kind in args.models:
            pot = model(kind, species, dtype)
            if kind == "lr":  # the MD default: CG with a tolerance NVE tolerates, loose enough for float32
                pot = dataclasses.replace(pot, config=dataclasses.replace(pot.config, qeq_tol=1e-5))
            if args.dtype == "mixed":
                pot = dataclasses.replace(pot, runtime=dataclasses.replace(pot.runtime, network_dtype="float32"))
            row = {"kind": "md", "system": name, "natoms": len(atoms), "model": kind, "dtype": args.dtype,
                   "device": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform,
                   "threads": len(os.sched_getaffinity(0)), "dt_fs": args.dt, "chunk": args.chunk,
                   "cell_list": args.cell_list}
            row.update(time_jax_md(pot, atoms, args, dtype))
            row["steps_per_s"] = 1e3 / row["jax_md_ms"]
            row["atom_steps_per_s"] = row["steps_per_s"] * len(atoms)
            if args.ase_steps > 0:
                row.update(time_ase(pot, atoms, args))
                row["ratio"] = row["jax_md_ms"] / row["ase_ms"]
                row["floor_ratio"] = row["force_ms"] / row["ase_ms"]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
