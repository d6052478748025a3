"""Molecular dynamics with jax-md: :class:`Dynamics` (jitted chunks of steps that never use an
overflowed neighbour list) and the ``eqlr-jax md`` driver.

Units: Å, eV, amu, fs on the interface (jax-md's internal time unit is Å √(amu/eV) ≈ 10.18 fs,
ASE's, so ``dt = dt_fs * ase.units.fs``), K, GPa for the logged pressure.

Ensembles: ``nve`` (velocity Verlet, ``simulate.nve``), ``nvt`` (BAOAB Langevin,
``simulate.nvt_langevin``, friction in 1/fs), ``npt`` (Nosé-Hoover chains with the MTK barostat,
``simulate.npt_nose_hoover``, isotropic; periodic cells only). Each runs through
:func:`eqlr_jax.jax_md.qeq_integrator`: the previous step's charges start the next QEq solve.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .structure import Structure

__all__ = ["Dynamics", "ENSEMBLES", "Chunk", "add_md_parser", "run_md_command"]

ENSEMBLES = ("nve", "nvt", "npt")
_RECORDS = ("epot", "ekin", "conserved", "energy_short", "energy_elec", "total_charge", "qeq_residual",
            "qeq_iterations", "volume")


@dataclasses.dataclass
class Chunk:
    """What :meth:`Dynamics.run` reports after each chunk: ``step`` (steps done), ``records``
    (per step of the chunk, NumPy: epot, ekin, conserved, energy_short, energy_elec (eV),
    total_charge (e), qeq_residual (eV/e), qeq_iterations, volume (Å³, NaN when open)),
    ``reallocations`` (list reallocations so far), ``wall`` (s for this chunk, re-runs included)."""

    step: int
    records: dict
    reallocations: int
    wall: float


class Dynamics:
    """MD of one structure with a potential, jax-md integrators and QEq warm starts.

    Args:
        potential: an :class:`eqlr_jax.Potential`.
        atoms: ``ase.Atoms``; its cell and pbc define the box (a slab keeps pbc (T, T, F) for the
            model; jax-md still wraps along the vacuum axis, so keep the slab inside the cell).
            The total charge is read as the ASE calculator reads it unless ``total_charge`` is
            given. Velocities: the atoms' momenta if any, else Maxwell-Boltzmann at
            ``temperature_K``.
        ensemble: ``"nve"``, ``"nvt"`` or ``"npt"``.
        dt_fs: time step, fs. temperature_K: target (NVT, NPT) or initial (NVE) temperature.
        pressure_gpa: NPT target pressure. friction_per_fs: Langevin friction (NVT).
        tau_t_fs, tau_p_fs: Nosé-Hoover thermostat and barostat times (NPT).
        chunk: steps per jitted chunk (the unit of logging, overflow checks and re-runs).
        extra_energy: optional ``make(displacement_fn) -> energy(R, **kwargs)``, an energy (eV)
            added to the potential's (e.g. a jax-md pair potential; it receives ``box=`` and
            ``perturbation=``).
        dtype: float dtype of positions and model evaluation (float64 needs jax_enable_x64).
        **neighbor_kwargs: passed to :func:`eqlr_jax.jax_md.md_functions` (``dr_threshold``
            > 0, ``capacity_multiplier``, ``kvector_margin``).
    """

    def __init__(self, potential, atoms, ensemble: str = "nve", *, dt_fs: float = 0.5,
                 temperature_K: float = 300.0, pressure_gpa: float = 0.0, friction_per_fs: float = 0.01,
                 tau_t_fs: float = 100.0, tau_p_fs: float = 1000.0, total_charge: float | None = None,
                 chunk: int = 50, extra_energy: Callable | None = None, dtype=None, seed: int = 0,
                 **neighbor_kwargs):
        from ase import units
        from jax_md import simulate, space

        from .jax_md import md_functions, qeq_integrator, with_extra_energy

        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
        if not (dt_fs > 0 and temperature_K >= 0 and chunk >= 1):
            raise ValueError(f"need dt_fs > 0, temperature_K >= 0, chunk >= 1; got {dt_fs}, {temperature_K}, {chunk}")
        if neighbor_kwargs.get("dr_threshold", 0.5) <= 0:
            raise ValueError("Dynamics needs a neighbour-list skin dr_threshold > 0 (Å)")
        structure = Structure.from_ase(atoms, total_charge=total_charge)
        self.periodic = bool(structure.pbc.any())
        if ensemble == "npt" and not structure.pbc.all():
            raise ValueError("npt needs a 3-D periodic cell")
        self.atoms = atoms
        self.ensemble = ensemble
        self.chunk = int(chunk)
        self.dt_fs = float(dt_fs)
        self.dtype = jnp.dtype(dtype) if dtype is not None else jnp.zeros(()).dtype
        self.kT = float(units.kB * temperature_K)
        self.pressure = float(pressure_gpa * units.GPa)
        self.key = jax.random.PRNGKey(seed)
        self.total_charge = structure.total_charge
        self.masses = jnp.asarray(atoms.get_masses(), self.dtype)
        if self.periodic:
            self.box0 = jnp.asarray(structure.cell.T, self.dtype)
            disp, self.shift_fn = space.periodic_general(self.box0, fractional_coordinates=True)
            self.R0 = jnp.asarray(np.linalg.solve(structure.cell.T, structure.positions.T).T, self.dtype)
        else:
            self.box0 = None
            disp, self.shift_fn = space.free()
            self.R0 = jnp.asarray(structure.positions, self.dtype)
        self.displacement_fn = disp
        fns = md_functions(disp, self.box0, potential, structure.numbers, total_charge=structure.total_charge,
                           fractional_coordinates=self.periodic, pbc=structure.pbc if self.periodic else None,
                           **neighbor_kwargs)
        if extra_energy is not None:
            fns = with_extra_energy(fns, extra_energy(disp))
        self.fns = fns
        dt = self.dt_fs * units.fs
        if ensemble == "nve":
            args, kw = (simulate.nve, dt), {}
        elif ensemble == "nvt":
            args, kw = (simulate.nvt_langevin, dt, self.kT), {"gamma": friction_per_fs / units.fs}
        else:
            args = (simulate.npt_nose_hoover, dt, self.pressure, self.kT)
            kw = {"barostat_kwargs": {"tau": tau_p_fs * units.fs}, "thermostat_kwargs": {"tau": tau_t_fs * units.fs}}
        self.init_fn, self.apply_fn = qeq_integrator(args[0], fns, self.shift_fn, *args[1:], **kw)
        self._chunk_fn = jax.jit(self._chunk)
        self._thermo_fn = jax.jit(self._thermo)
        self.reallocations = 0

    # -- state ---------------------------------------------------------------------------------
    def box(self, md):
        """The jax-md box of an integrator state (None when open)."""
        from jax_md import simulate

        if not self.periodic:
            return None
        return simulate.npt_box(md) if self.ensemble == "npt" else self.box0

    def _box_kw(self, md):
        return {"box": self.box(md)} if self.periodic else {}

    def positions(self, md):
        """(N, 3) Cartesian positions of an integrator state, Å."""
        from jax_md import space

        return space.transform(self.box(md), md.position) if self.periodic else md.position

    def init(self):
        """(state, neighbours) at the atoms' positions and velocities."""
        nbrs = self.fns.neighbor_fn.allocate(self.R0)
        kw = {"mass": self.masses, "kT": self.kT}
        if self.ensemble == "npt":
            kw["box"] = self.box0
        p = np.asarray(self.atoms.get_momenta())
        if np.any(p != 0):
            kw["momenta"] = jnp.asarray(p, self.dtype)
        state = jax.jit(self.init_fn)(self.key, self.R0, neighbor=nbrs, **kw)
        return state, nbrs

    # -- the jitted chunk ----------------------------------------------------------------------
    def _record(self, st):
        from jax_md import quantity, simulate

        md, t = st.md, st.terms
        ekin = quantity.kinetic_energy(momentum=md.momentum, mass=md.mass)
        if self.ensemble == "npt":
            conserved = simulate.npt_nose_hoover_invariant(lambda *a, **k: t["energy"], md, self.pressure, self.kT)
        else:
            conserved = t["energy"] + ekin  # NVE: conserved; NVT (Langevin): not conserved
        box = self.box(md)
        vol = jnp.abs(jnp.linalg.det(box)) if box is not None else jnp.asarray(jnp.nan, ekin.dtype)
        return {"epot": t["energy"], "ekin": ekin, "conserved": conserved, "energy_short": t["energy_short"],
                "energy_elec": t["energy_elec"], "total_charge": t["total_charge"], "qeq_residual": t["qeq_residual"],
                "qeq_iterations": t["qeq_iterations"], "volume": vol}

    def _chunk(self, state, nbrs, n):
        """``n`` (≤ ``chunk``) steps: (state, nbrs, records, overflow, stale)."""
        nbrs = nbrs.update(state.md.position, **self._box_kw(state.md))
        first = self._record(state)
        rec = {k: jnp.zeros((self.chunk,) + jnp.shape(v), jnp.asarray(v).dtype) for k, v in first.items()}

        def body(k, carry):
            st, nb, overflow, stale, rec = carry
            st = self.apply_fn(st, neighbor=nb)
            stale = stale | ~st.terms["neighbors_ok"]
            nb = nb.update(st.md.position, **self._box_kw(st.md))
            overflow = overflow | nb.did_buffer_overflow | ~st.terms["edges_ok"]
            rec = {key: rec[key].at[k].set(v) for key, v in self._record(st).items()}
            return st, nb, overflow, stale, rec

        carry = (state, nbrs, nbrs.did_buffer_overflow, jnp.zeros((), bool), rec)
        return jax.lax.fori_loop(0, n, body, carry)

    def _thermo(self, state, nbrs):
        """Instantaneous pressure (eV/Å³, kinetic part included; NaN when open), temperature (K)
        and, for an ensemble, each atom's force spread (N,) eV/Å (NaN for a single model)."""
        from ase import units
        from jax_md import quantity

        md = state.md
        ekin = quantity.kinetic_energy(momentum=md.momentum, mass=md.mass)
        temp = 2.0 * ekin / (md.position.size * units.kB)
        guess = state.charges if self.fns.long_range else None
        if "members_energy" in state.terms:
            # the members' forces, one backward pass each; only at logged steps
            members = lambda R: self.fns.terms_fn(R, nbrs, charges_guess=guess, **self._box_kw(md))["members_energy"]  # noqa: E731
            forces = -jax.jacrev(members)(md.position)  # (K, N, 3), Cartesian (jax-md's transform)
            spread = jnp.sqrt(jnp.sum(jnp.var(forces, axis=0), axis=-1))
        else:
            spread = jnp.full(md.position.shape[0], jnp.nan, ekin.dtype)
        if not self.periodic:
            return jnp.asarray(jnp.nan, ekin.dtype), temp, spread
        box = self.box(md)
        energy = lambda R, **kw: self.fns.energy_fn(R, nbrs, charges_guess=guess, **kw)  # noqa: E731
        return quantity.pressure(energy, md.position, box, ekin), temp, spread

    def thermo(self, state, nbrs) -> dict:
        """Pressure (GPa), temperature (K) and, for an ensemble, the force uncertainty:
        ``force_std`` (N,) eV/Å, each atom's spread of the members' forces,
        sqrt(Σ_xyz var_k F_k), and ``force_std_max``, its largest (NaN for a single model)."""
        from ase import units

        p, t, spread = self._thermo_fn(state, nbrs)
        spread = np.asarray(spread, np.float64)
        return {"pressure": float(p) / units.GPa, "temperature": float(t), "force_std": spread,
                "force_std_max": float(np.max(spread))}

    def run(self, state, nbrs, n_steps: int, on_chunk: Callable | None = None, max_retries: int = 8):
        """Advance ``n_steps`` in chunks; after each chunk check the lists (capacities, image
        stencil, k-vector margin) at every step, and on overflow reallocate them for the chunk's
        end and re-run the chunk from its start. ``on_chunk(state, nbrs, Chunk)`` after each.

        Raises:
            RuntimeError: a force was evaluated with a list whose skin was used up within one
                step (reduce dt or raise dr_threshold), or the chunk kept overflowing.
        """
        done = 0
        while done < n_steps:
            n = min(self.chunk, n_steps - done)
            t0 = time.perf_counter()
            for attempt in range(max_retries):
                new_state, new_nbrs, overflow, stale, rec = self._chunk_fn(state, nbrs, n)
                if bool(stale):
                    raise RuntimeError("an atom moved more than a quarter of the neighbour-list skin in one step: "
                                       "reduce the time step or raise dr_threshold")
                if not bool(overflow):
                    break
                nbrs = self._reallocate(state, new_state, nbrs, grow=attempt > 0)
            else:
                raise RuntimeError(f"the neighbour lists overflowed {max_retries} times in one chunk: use shorter chunks")
            state, nbrs = new_state, new_nbrs
            done += n
            if on_chunk is not None:
                records = {k: np.asarray(v[:n]) for k, v in rec.items()}
                on_chunk(state, nbrs, Chunk(done, records, self.reallocations, time.perf_counter() - t0))
        return state, nbrs

    def _reallocate(self, start, end, nbrs, grow: bool):
        """Lists for re-running an overflowed chunk: built at its start, sized for its start and
        end, never smaller than before (same shapes, no recompile, when only the k-vector set or
        the stencil changed), 25 % larger on a retry."""
        self.reallocations += 1
        f = 1.25 if grow else 1.0
        caps = tuple(int(c * f) for c in nbrs.capacities)
        return self.fns.neighbor_fn.allocate(start.md.position, box=self.box(start.md), capacity=caps,
                                             cover=[(end.md.position, self.box(end.md))])


# ---------------------------------------------------------------------------------------------
# the ``eqlr-jax md`` driver

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
    m.add_argument("--dtype", choices=("float32", "float64"), default="float32")
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
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # this process is the application: its choice
    import ase.io

    import eqlr_jax

    _setup_cache(args)
    pot = eqlr_jax.load(args.model)
    if args.qeq_solver is not None:
        pot = dataclasses.replace(pot, runtime=dataclasses.replace(pot.runtime, qeq_solver=args.qeq_solver))
    atoms = ase.io.read(args.structure, index=0)
    dyn = Dynamics(pot, atoms, args.ensemble, dt_fs=args.dt, temperature_K=args.temperature,
                   pressure_gpa=args.pressure, friction_per_fs=args.friction, tau_t_fs=args.tau_t,
                   tau_p_fs=args.tau_p, total_charge=args.charge, chunk=args.every, dtype=args.dtype,
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
