"""Molecular dynamics with jax-md: :class:`Dynamics`, jitted chunks of steps that never use an
overflowed neighbour list (the ``eqlr-jax md`` driver on top of it is :mod:`eqlr_jax.md_cli`).

Units: Å, eV, amu, fs on the interface (jax-md's internal time unit is Å √(amu/eV) ≈ 10.18 fs,
ASE's, so ``dt = dt_fs * ase.units.fs``), K, GPa for the logged pressure.

Ensembles: ``nve`` (velocity Verlet, ``simulate.nve``), ``nvt`` (BAOAB Langevin,
``simulate.nvt_langevin``, friction in 1/fs), ``npt`` (Nosé-Hoover chains with the MTK barostat,
``simulate.npt_nose_hoover``, isotropic; periodic cells only). Each runs through
:func:`eqlr_jax.jax_md.qeq_integrator`: the previous step's charges start the next QEq solve.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .structure import Structure

__all__ = ["Dynamics", "ENSEMBLES", "Chunk"]

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
        bins = tuple(int(c * f) for c in nbrs.bin_capacities)
        return self.fns.neighbor_fn.allocate(start.md.position, box=self.box(start.md), capacity=caps,
                                             cover=[(end.md.position, self.box(end.md))], bin_capacity=bins)
