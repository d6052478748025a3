"""ASE calculator on top of a :class:`~eqlr_jax.potential.Potential`.

It keeps one padded capacity and grows it only when a structure no longer fits, so an MD run
or a relaxation compiles once (twice at most if the neighbour count drifts past a bucket).

Results: ``energy`` and ``free_energy`` (eV), ``energies`` (per atom, eV), ``forces`` (eV/Å)
and, for 3-D periodic structures, ``stress`` (eV/Å^3, Voigt order xx yy zz yz xz xy, ASE sign).
Long-range models add ``charges`` (e, ASE's name for atomic charges), ``dipole`` (e·Å, only for
structures with no periodic axis), and in ``calc.results`` the extras ``energy_short``,
``energy_elec``, ``energy_qeq`` (eV), ``chi`` (eV/e), ``qeq_residual`` (eV/e) and
``qeq_iterations``. For an :class:`~eqlr_jax.ensemble.EnsemblePotential` the results are the
members' means, and ``energy_std`` (eV), ``forces_std`` (eV/Å) and ``charges_std`` (e) their
spread.

The total charge is read as :meth:`Structure.from_ase` reads it (``atoms.info["total_charge"]``,
else ``atoms.info["charge"]``, else the sum of the initial charges). ASE decides from the
geometry alone whether to recompute, so this calculator also compares the total charge: a new
charge state is never answered with the previous one's results.
"""
from __future__ import annotations

import logging

import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from .graph import Capacity, build_graph, capacity_for, long_range_parts
from .models import long_range_spec
from .neighbors import neighbor_list
from .structure import Structure

__all__ = ["Calculator"]

logger = logging.getLogger(__name__)

_LR_EXTRAS = ("energy_short", "energy_elec", "energy_qeq")


class Calculator(_AseCalculator):
    """ASE calculator for an eqlr_jax potential.

    Args:
        potential: the :class:`~eqlr_jax.potential.Potential`.
        dtype: ``"float32"`` (default) or ``"float64"`` (needs ``jax_enable_x64``).
        headroom: fraction of extra capacity allocated when the capacity grows (default 0.1),
            so that small fluctuations in the number of neighbours do not recompile.
        warm_start: start each iterative QEq solve from the previous call's charges (default
            True; it changes the charges only within the solver tolerance).
    """

    def __init__(self, potential, dtype: str = "float32", headroom: float = 0.1, warm_start: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        import jax
        import jax.numpy as jnp

        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError("dtype='float64' needs jax_enable_x64: call "
                             "jax.config.update('jax_enable_x64', True) at the start of your script")
        self.potential = potential
        self.dtype = jnp.dtype(dtype)
        self.headroom = float(headroom)
        self.warm_start = bool(warm_start)
        self.capacity: Capacity | None = None
        self.n_compiles = 0  # times the capacity was (re)allocated (each costs one compile)
        self._total_charge: float | None = None
        self._guess = None
        self.implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
        if potential.long_range:
            self.implemented_properties += ["charges", "dipole"]

    def _capacity_for(self, n_atoms: int, n_edges: int, n_pairs=None, n_kvectors=None) -> Capacity:
        """Current capacity, grown (with headroom, then bucketed) if this structure does not fit."""
        exact = capacity_for(n_atoms, n_edges, 1, exact=True, n_pairs=n_pairs, n_kvectors=n_kvectors)
        if self.capacity is None or not self.capacity.fits(exact):
            h = 1.0 + self.headroom
            grow = lambda n: None if n is None else int(np.ceil(n * h))  # noqa: E731
            grown = capacity_for(grow(n_atoms), grow(n_edges), 1, n_pairs=grow(n_pairs),
                                 n_kvectors=grow(n_kvectors))
            first = self.capacity is None
            self.capacity = grown if first else self.capacity.union(grown)
            self.n_compiles += 1
            self._guess = None
            logger.info("%s capacity %d atoms, %d edges%s (capacity %d of this calculator): this call "
                        "compiles the model unless the program is cached, which takes seconds; "
                        "eqlr_jax.enable_compilation_cache() keeps compiled programs for later runs",
                        "padded" if first else "grown to", self.capacity.n_node, self.capacity.n_edge,
                        "" if n_pairs is None else f", {self.capacity.n_pair} long-range pairs, "
                        f"{self.capacity.n_kvector} k-vectors", self.n_compiles)
        return self.capacity

    def check_state(self, atoms, tol=1e-15):
        changes = super().check_state(atoms, tol)
        if self._total_charge is not None and atoms is not None:
            if Structure.from_ase(atoms).total_charge != self._total_charge and "total_charge" not in changes:
                changes = list(changes) + ["total_charge"]
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        structure = Structure.from_ase(self.atoms)
        periodic = bool(structure.pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress is only defined for 3-D periodic structures")
        if "dipole" in properties and structure.pbc.any():
            raise PropertyNotImplementedError("the dipole is only defined for structures with no periodic axis")
        pot = self.potential
        spec = long_range_spec(pot.config, pot.runtime)
        edges = neighbor_list(structure, pot.cutoff)
        parts = None if spec is None else long_range_parts([structure], pot.species, spec)
        capacity = self._capacity_for(structure.n_atoms, len(edges[0]),
                                      None if parts is None else len(parts[0].i),
                                      None if parts is None else len(parts[0].miller))
        graph, _ = build_graph(structure, pot.cutoff, pot.species, capacity=capacity, dtype=self.dtype,
                               edges=[edges], long_range=spec, parts=parts)
        guess = self._guess if (self.warm_start and spec is not None) else None
        out = pot(graph, compute_stress=periodic, charges_guess=guess)
        self._total_charge = structure.total_charge
        n = structure.n_atoms
        energy = float(out["energy"][0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = np.asarray(out["node_energies"][:n], dtype=np.float64)
        self.results["forces"] = np.asarray(out["forces"][:n], dtype=np.float64)
        if periodic:
            s = np.asarray(out["stress"][0], dtype=np.float64)
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        if spec is not None:
            self._guess = out["charges"]
            self.results["charges"] = np.asarray(out["charges"][:n], dtype=np.float64)
            self.results["chi"] = np.asarray(out["chi"][:n], dtype=np.float64)
            if not structure.pbc.any():
                self.results["dipole"] = np.asarray(out["dipole"][0], dtype=np.float64)
            for k in _LR_EXTRAS:
                self.results[k] = float(out[k][0])
            self.results["qeq_residual"] = float(out["qeq_residual"])
            self.results["qeq_iterations"] = int(out["qeq_iterations"])
        if "energy_std" in out:  # an ensemble: the members' spread
            self.results["energy_std"] = float(out["energy_std"][0])
            self.results["forces_std"] = np.asarray(out["forces_std"][:n], dtype=np.float64)
            if "charges_std" in out:
                self.results["charges_std"] = np.asarray(out["charges_std"][:n], dtype=np.float64)
