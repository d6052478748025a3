"""A validated atomic structure on the host: the API boundary where bad input is caught.

Every path into the model (ASE calculator, datasets, the demo, jax-md set-up) builds a
:class:`Structure` first, so every path gets the same clear errors.

Units: positions and cell in Å, total charge in e.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .lattice import lattice_defect

__all__ = ["Structure", "InvalidStructureError"]


class InvalidStructureError(ValueError):
    """Raised when a structure cannot be evaluated (NaN positions, singular cell, ...)."""


@dataclasses.dataclass(frozen=True)
class Structure:
    """One atomic structure, checked on construction.

    Attributes:
        positions: (N, 3) float64 Cartesian positions, Å.
        numbers: (N,) int atomic numbers.
        cell: (3, 3) float64 lattice vectors as rows, Å. All zeros for an isolated molecule.
        pbc: (3,) bool periodicity along each lattice vector.
        total_charge: net charge of the structure, e.
    """

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    total_charge: float = 0.0

    def __post_init__(self):
        pos = np.asarray(self.positions, dtype=np.float64)
        num = np.asarray(self.numbers)
        cell = np.zeros((3, 3)) if self.cell is None else np.asarray(self.cell, dtype=np.float64)
        pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise InvalidStructureError(f"positions must have shape (N, 3), got {pos.shape}")
        if num.shape != (pos.shape[0],):
            raise InvalidStructureError(
                f"numbers must have shape ({pos.shape[0]},) to match positions, got {num.shape}")
        if pos.shape[0] == 0:
            raise InvalidStructureError("structure has no atoms")
        if not np.issubdtype(num.dtype, np.integer):
            raise InvalidStructureError(f"atomic numbers must be integers, got dtype {num.dtype}")
        bad = ~np.isfinite(pos).all(axis=1)
        if bad.any():
            raise InvalidStructureError(
                f"positions contain NaN or inf for {bad.sum()} atom(s), first at index {int(np.argmax(bad))}")
        if cell.shape != (3, 3):
            raise InvalidStructureError(f"cell must have shape (3, 3), got {cell.shape}")
        if not np.isfinite(cell).all():
            raise InvalidStructureError("cell contains NaN or inf")
        if pbc.any():
            # only the periodic vectors must be independent (a slab's vacuum vector may be zero)
            defect = lattice_defect(cell[pbc])
            if defect is not None:
                raise InvalidStructureError(f"the periodic cell vectors (pbc={pbc.tolist()}) have {defect}")
        tq = float(self.total_charge)
        if not np.isfinite(tq):
            raise InvalidStructureError(f"total_charge must be finite, got {self.total_charge}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "numbers", num.astype(np.int64))
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "pbc", pbc)
        object.__setattr__(self, "total_charge", tq)

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @classmethod
    def from_ase(cls, atoms: Any, total_charge: float | None = None) -> "Structure":
        """Build from an ``ase.Atoms``.

        The total charge is ``total_charge`` if given, else ``atoms.info["total_charge"]``, else
        ``atoms.info["charge"]``, else the sum of ``atoms.get_initial_charges()`` (0 if unset).
        """
        if total_charge is None:
            info = getattr(atoms, "info", {}) or {}
            if "total_charge" in info:
                total_charge = info["total_charge"]
            elif "charge" in info:
                total_charge = info["charge"]
            else:
                total_charge = float(np.sum(atoms.get_initial_charges()))
        return cls(positions=atoms.get_positions(), numbers=atoms.get_atomic_numbers(),
                   cell=np.asarray(atoms.get_cell()), pbc=atoms.get_pbc(), total_charge=total_charge)
