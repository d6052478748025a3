"""The ``eqlr-jax md`` driver: a structure and a model file in; a trajectory with charges
(extxyz), a thermo log, a progress bar with ns/day and a PNG of energy and temperature out.
It runs :class:`eqlr_jax.md.Dynamics` in chunks of ``--every`` steps.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from .md import ENSEMBLES, Chunk, Dynamics

THERMO_COLUMNS = ("step", "time_fs", "E_total", "E_pot", "E_short", "E_elec", "E_kin", "T_K", "P_GPa",
                  "volume_A3", "total_charge", "max_qeq_residual", "F_std_max", "conserved")


def add_md_parser(subparsers) -> None:
    """The ``md`` subcommand (``eqlr_jax.cli`` hooks it in)."""
    from .cli import _cache_options

    m = subparsers.add_parser("md", help="molecular dynamics of a structure with a model file (jax-md)",
                              description="Molecular dynamics with jax-md: jitted chunks of --every steps; "
                                          "writes DIR/trajectory.extxyz (with charges), DIR/thermo.log, "
                                          "DIR/thermo.png.")
    m.add_argument("model", help="model file (*.eqlr)")
    m.add_argument("structure", help="structure file ASE can read (the first frame); its info['total_charge'] "
                                     "or info['charge'] is the net charge")
    m.add_argument("--ensemble", choices=ENSEMBLES, default="nvt")
    m.add_argument("--temperature", type=float, default=300.0, help="K: target (nvt, npt) or initial (nve)")
    m.add_argument("--steps", type=int, default=1000)
    m.add_argument("--dt", type=float, default=0.5, help="time step, fs")
    m.add_argument("--pressure", type=float, default=0.0, help="npt target pressure, GPa")
    m.add_argument("--friction", type=float, default=0.01, help="nvt Langevin friction, 1/fs")
    m.add_argument("--tau-t", type=float, default=100.0, help="npt thermostat time, fs")
    m.add_argument("--tau-p", type=float, default=1000.0, help="npt barostat time, fs")
    m.add_argument("--charge", type=float, default=None, help="net charge, e (default: from the structure)")
    m.add_argument("--every", type=int, default=50, help="steps per chunk: one thermo line and frame each")
    m.add_argument("--skin", type=float, default=0.5, help="neighbour-list skin, Å")
    m.add_argument("--qeq-solver", choices=("auto", "dense", "cg"), default=None,
                   help="override the model's runtime QEq solver")
    m.add_argument("--dtype", choices=("float32", "float64", "mixed"), default="float32",
                   help="mixed: float64 positions, QEq and electrostatics, float32 networks")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", default="md-out", metavar="DIR", help="output directory (created)")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    _cache_options(m)
    m.set_defaults(func=run_md_command)


def run_md_command(args) -> int:
    import jax

    from .cli import _setup_cache

    if args.steps < 1 or args.every < 1:
        raise ValueError("--steps and --every must be >= 1")
    if args.dtype in ("float64", "mixed"):
        jax.config.update("jax_enable_x64", True)  # this process is the application: its choice
    import ase.io

    import eqlr_jax

    _setup_cache(args)
    pot = eqlr_jax.load(args.model)
    if args.qeq_solver is not None:
        pot = dataclasses.replace(pot, runtime=dataclasses.replace(pot.runtime, qeq_solver=args.qeq_solver))
    if args.dtype == "mixed":
        pot = dataclasses.replace(pot, runtime=dataclasses.replace(pot.runtime, network_dtype="float32"))
    atoms = ase.io.read(args.structure, index=0)
    dyn = Dynamics(pot, atoms, args.ensemble, dt_fs=args.dt, temperature_K=args.temperature,
                   pressure_gpa=args.pressure, friction_per_fs=args.friction, tau_t_fs=args.tau_t,
                   tau_p_fs=args.tau_p, total_charge=args.charge, chunk=args.every,
                   dtype="float64" if args.dtype == "mixed" else args.dtype,
                   seed=args.seed, dr_threshold=args.skin)
    os.makedirs(args.out, exist_ok=True)
    traj = os.path.join(args.out, "trajectory.extxyz")
    log = os.path.join(args.out, "thermo.log")
    for path in (traj,):
        if os.path.exists(path):
            os.remove(path)
    print(f"eqlr_jax {eqlr_jax.__version__}: {args.ensemble} MD of {len(atoms)} atoms "
          f"({atoms.get_chemical_formula()}, net charge {dyn.total_charge:g} e), {args.steps} steps of "
          f"{args.dt} fs, model {args.model} ({'long' if pot.long_range else 'short'} range), {args.dtype}, "
          f"{jax.devices()[0].platform}; output in {args.out}/")
    state, nbrs = dyn.init()
    rows = []
    with open(log, "w") as f:
        f.write("# " + " ".join(THERMO_COLUMNS) + "\n")
        rows.append(_thermo_row(dyn, state, nbrs, 0, None))
        f.write(_format_row(rows[-1]))
        _write_frame(traj, dyn, state, rows[-1])
        bar = _progress(args)
        timer = {"t": time.perf_counter(), "first": True}

        def on_chunk(st, nb, chunk: Chunk):
            row = _thermo_row(dyn, st, nb, chunk.step, chunk.records)
            rows.append(row)
            f.write(_format_row(row))
            f.flush()
            _write_frame(traj, dyn, st, row)
            n_done = chunk.step - (rows[-2]["step"] if len(rows) > 1 else 0)
            now = time.perf_counter()
            ns_day = n_done * args.dt * 1e-6 / max(now - timer["t"], 1e-9) * 86400.0
            timer["t"] = now
            if bar is not None:
                bar.update(n_done)
                bar.set_postfix_str(f"{ns_day:.3g} ns/day, T {row['T_K']:.0f} K, E {row['E_total']:.4f} eV"
                                    + ("" if math.isnan(row["F_std_max"]) else f", F_std {row['F_std_max']:.3f} eV/Å")
                                    + ("" if not chunk.reallocations else f", {chunk.reallocations} realloc"))

        t0 = time.perf_counter()
        dyn.run(state, nbrs, args.steps, on_chunk)
        wall = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    png = os.path.join(args.out, "thermo.png")
    _plot(rows, png, args)
    print(f"{args.steps} steps in {wall:.1f} s (compilation included; {args.steps * args.dt * 1e-6 / wall * 86400:.3g} "
          f"ns/day), {dyn.reallocations} list reallocations; wrote {traj}, {log}, {png}")
    return 0


def _progress(args):
    if args.no_progress:
        return None
    from tqdm import tqdm

    return tqdm(total=args.steps, unit="step", dynamic_ncols=True)


def _thermo_row(dyn: Dynamics, state, nbrs, step: int, records) -> dict:
    th = dyn.thermo(state, nbrs)
    t = state.terms
    epot = float(t["energy"])
    if records is not None:
        ekin, conserved = float(records["ekin"][-1]), float(records["conserved"][-1])
        residual = float(np.max(records["qeq_residual"]))
        volume = float(records["volume"][-1])
    else:
        from jax_md import quantity

        ekin = float(quantity.kinetic_energy(momentum=state.md.momentum, mass=state.md.mass))
        conserved, residual = epot + ekin, float(t["qeq_residual"])
        box = dyn.box(state.md)
        volume = float(abs(np.linalg.det(np.asarray(box)))) if box is not None else math.nan
    return {"step": step, "time_fs": step * dyn.dt_fs, "E_total": epot + ekin, "E_pot": epot,
            "E_short": float(t["energy_short"]), "E_elec": float(t["energy_elec"]), "E_kin": ekin,
            "T_K": th["temperature"], "P_GPa": th["pressure"], "volume_A3": volume,
            "total_charge": float(t["total_charge"]), "max_qeq_residual": residual,
            "F_std_max": th["force_std_max"], "conserved": conserved, "force_std": th["force_std"]}


def _format_row(row: dict) -> str:
    return " ".join(f"{row[c]:d}" if c == "step" else f"{row[c]:.10g}" for c in THERMO_COLUMNS) + "\n"


def _write_frame(path: str, dyn: Dynamics, state, row: dict) -> None:
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = dyn.atoms.copy()
    atoms.set_positions(np.asarray(dyn.positions(state.md), np.float64))
    box = dyn.box(state.md)
    if box is not None:
        atoms.set_cell(np.asarray(box, np.float64).T)
    atoms.set_momenta(np.asarray(state.md.momentum, np.float64))
    atoms.info.update({k: row[k] for k in ("step", "time_fs", "T_K", "P_GPa", "E_short", "E_elec", "E_total")})
    atoms.info["total_charge"] = dyn.total_charge
    if np.all(np.isfinite(row["force_std"])):  # an ensemble's force uncertainty, eV/Å
        atoms.arrays["forces_std"] = row["force_std"]
    atoms.calc = SinglePointCalculator(atoms, energy=row["E_pot"], forces=np.asarray(state.md.force, np.float64),
                                       charges=np.asarray(state.charges, np.float64))
    ase.io.write(path, atoms, format="extxyz", append=True)


def _plot(rows, path: str, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["time_fs"] * 1e-3 for r in rows]
    spread = [r["F_std_max"] for r in rows]
    ensemble = bool(np.all(np.isfinite(spread)))
    fig, axes = plt.subplots(3 if ensemble else 2, 1, sharex=True, figsize=(7, 7 if ensemble else 5))
    a, b = axes[0], axes[1]
    a.plot(t, [r["E_total"] for r in rows], label="E_total")
    a.plot(t, [r["E_pot"] for r in rows], label="E_pot")
    if args.ensemble == "npt":
        a.plot(t, [r["conserved"] for r in rows], label="NPT invariant", ls="--")
    a.set_ylabel("energy (eV)")
    a.legend(loc="best", fontsize="small")
    b.plot(t, [r["T_K"] for r in rows], color="C3")
    if args.ensemble != "nve":
        b.axhline(args.temperature, color="k", lw=0.8, ls=":")
    b.set_ylabel("temperature (K)")
    if ensemble:
        axes[2].plot(t, spread, color="C2")
        axes[2].set_ylabel("max force spread (eV/Å)")
    axes[-1].set_xlabel("time (ps)")
    fig.suptitle(f"eqlr-jax md: {args.ensemble}, {os.path.basename(args.structure)}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
