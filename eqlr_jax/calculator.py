"""ASE calculator on top of a :class:`~eqlr_jax.potential.Potential`.

It keeps one padded capacity and grows it only when a structure no longer fits, so an MD run
or a relaxation compiles once (twice at most if the neighbour count drifts past a bucket).

Results: ``energy`` and ``free_energy`` (eV), ``energies`` (per atom, eV), ``forces`` (eV/Å)
and, for 3-D periodic structures, ``stress`` (eV/Å^3, Voigt order xx yy zz yz xz xy, ASE sign).
"""
from __future__ import annotations

import logging

import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from .graph import Capacity, build_graph, capacity_for
from .neighbors import neighbor_list
from .structure import Structure

__all__ = ["Calculator"]

logger = logging.getLogger(__name__)


class Calculator(_AseCalculator):
    """ASE calculator for an eqlr_jax potential.

    Args:
        potential: the :class:`~eqlr_jax.potential.Potential`.
        dtype: ``"float32"`` (default) or ``"float64"`` (needs ``jax_enable_x64``).
        headroom: fraction of extra capacity allocated when the capacity grows (default 0.1),
            so that small fluctuations in the number of neighbours do not recompile.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, potential, dtype: str = "float32", headroom: float = 0.1, **kwargs):
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
        self.capacity: Capacity | None = None
        self.n_compiles = 0  # times the capacity was (re)allocated (each costs one compile)

    def _capacity_for(self, n_atoms: int, n_edges: int) -> Capacity:
        """Current capacity, grown (with headroom, then bucketed) if this structure does not fit."""
        exact = capacity_for(n_atoms, n_edges, 1, exact=True)
        if self.capacity is None or not self.capacity.fits(exact):
            h = 1.0 + self.headroom
            grown = capacity_for(int(np.ceil(n_atoms * h)), int(np.ceil(n_edges * h)), 1)
            first = self.capacity is None
            self.capacity = grown if first else self.capacity.union(grown)
            self.n_compiles += 1
            logger.info("%s capacity %d atoms, %d edges (capacity %d of this calculator): this call "
                        "compiles the model unless the program is cached, which takes seconds; "
                        "eqlr_jax.enable_compilation_cache() keeps compiled programs for later runs",
                        "padded" if first else "grown to",
                        self.capacity.n_node, self.capacity.n_edge, self.n_compiles)
        return self.capacity

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        structure = Structure.from_ase(self.atoms)
        periodic = bool(structure.pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress is only defined for 3-D periodic structures")
        pot = self.potential
        edges = neighbor_list(structure, pot.cutoff)
        capacity = self._capacity_for(structure.n_atoms, len(edges[0]))
        graph, _ = build_graph(structure, pot.cutoff, pot.species, capacity=capacity, dtype=self.dtype,
                               edges=[edges])
        out = pot(graph, compute_stress=periodic)
        n = structure.n_atoms
        energy = float(out["energy"][0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = np.asarray(out["node_energies"][:n], dtype=np.float64)
        self.results["forces"] = np.asarray(out["forces"][:n], dtype=np.float64)
        if periodic:
            s = np.asarray(out["stress"][0], dtype=np.float64)
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
