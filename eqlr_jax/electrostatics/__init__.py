"""Electrostatics of Gaussian charges: open boundaries and jit-compiled Ewald sums.

Depends only on jax, numpy, vesin and leaf modules of eqlr_jax (``errors``, ``lattice``,
``neighbors``; never on the neural network or ASE). Units: eV, Å, e;
k_e = 14.399645 eV·Å/e² (:data:`KE`).

Entry points:

* :func:`coulomb_energy`, :func:`coulomb_potential`, :func:`coulomb_matrix`: host
  convenience functions (validated input, NumPy output).
* Open boundaries, pure and jit-able: :func:`open_energy`, :func:`open_potential`,
  :func:`open_matrix`.
* Periodic (Ewald): :func:`prepare_ewald` (host, chooses eta, cutoffs and static shapes) →
  :meth:`EwaldSetup.build` (host, pair list) → :func:`ewald_energy`, :func:`ewald_potential`,
  :func:`ewald_operator` (repeated mat-vecs), :func:`ewald_matrix`, :func:`ewald_overflow`
  (pure, jit-able, differentiable in positions, cell, sigmas and charges).
* Slabs: ``prepare_ewald(..., slab_axis=2)`` or :func:`slab_correction_energy`.
* Flat batches of many open, periodic and slab structures (the long-range model's layout):
  :func:`structure_parts` + :func:`assemble_flat_data` (host) → :func:`flat_operator`,
  :func:`flat_energy`, :func:`flat_matrix` (pure, segment sums per structure).
"""

from ..errors import CapacityError
from .api import coulomb_energy, coulomb_matrix, coulomb_potential
from .constants import DEFAULT_ACCURACY, KE
from .coulomb import open_energy, open_matrix, open_potential
from .ewald import EwaldOperator, ewald_energy, ewald_matrix, ewald_operator, ewald_overflow, ewald_potential
from .ewald_setup import EwaldData, EwaldSetup, prepare_ewald, prepare_ewald_batch, stack_ewald_data
from .flat import FlatData, FlatOperator, flat_energy, flat_matrix, flat_operator
from .flat_setup import StructureParts, assemble_flat_data, structure_parts
from .pairs import PairList
from .surface import slab_correction_energy, slab_correction_potential

__all__ = [
    "KE", "DEFAULT_ACCURACY", "CapacityError", "coulomb_energy", "coulomb_potential", "coulomb_matrix",
    "open_energy", "open_potential", "open_matrix", "prepare_ewald", "prepare_ewald_batch",
    "stack_ewald_data", "EwaldSetup", "EwaldData", "PairList", "EwaldOperator", "ewald_energy",
    "ewald_potential", "ewald_operator", "ewald_matrix", "ewald_overflow", "slab_correction_energy",
    "slab_correction_potential", "FlatData", "FlatOperator", "flat_operator", "flat_energy", "flat_matrix",
    "StructureParts", "structure_parts", "assemble_flat_data",
]
