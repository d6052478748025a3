"""Host-side neighbour lists (vesin) with integer image shifts.

Handles triclinic cells, cells smaller than twice the cutoff (several images of one neighbour),
mixed or absent periodicity, and isolated molecules (no cell at all).

Convention: pair ``(i, j, S)`` means atom j, shifted by the integer lattice translation S, is a
neighbour of atom i. The edge vector pointing from i to that image is
``positions[j] - positions[i] + S @ cell`` (Å). :func:`neighbor_list` gives *full* lists (both
directions are present); :func:`pairs_within` is the one vesin call of the package, also behind
the Ewald pair list (``eqlr_jax.electrostatics.pairs``, half lists). This module imports only
NumPy and vesin at import time, so the electrostatics code may use it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import vesin

if TYPE_CHECKING:
    from .structure import Structure

__all__ = ["neighbor_list", "pairs_within", "OverlappingAtomsError", "MIN_DISTANCE"]

#: Pairs closer than this (Å) are rejected as overlapping atoms.
MIN_DISTANCE = 0.1


class OverlappingAtomsError(ValueError):
    """Raised when two atoms (or an atom and a periodic image of itself) nearly coincide."""


def _vesin_box(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """A non-singular box for vesin. Non-periodic vectors are never used for shifts, so a zero
    one is replaced by a unit vector orthogonal to the others; with no periodicity the box is zero."""
    if not pbc.any():
        return np.zeros((3, 3))
    box = np.array(cell, dtype=np.float64)
    if abs(np.linalg.det(box)) > 1e-12:
        return box
    for axis in np.flatnonzero(~pbc):
        others = [box[k] for k in range(3) if k != axis]
        v = np.cross(others[0], others[1])
        if np.linalg.norm(v) < 1e-12:  # two zero/parallel vectors: pick any orthonormal complement
            q, _ = np.linalg.qr(np.column_stack([box[k] for k in range(3) if np.linalg.norm(box[k]) > 0]
                                                + [np.eye(3)[m] for m in range(3)]))
            v = q[:, axis]
        box[axis] = v / np.linalg.norm(v)
    return box


def pairs_within(positions, cell, pbc, cutoff: float, full_list: bool):
    """All pairs ``(i, j, S)`` with ``|positions[j] - positions[i] + S @ cell| < cutoff``, from vesin.

    Args:
        positions: (N, 3) float, Å (need not be wrapped into the cell).
        cell: (3, 3) float, rows are lattice vectors, Å; non-periodic rows may be zero.
        pbc: bool or (3,) bools, periodicity along each lattice vector.
        cutoff: Å; may exceed half the cell (several images of one neighbour).
        full_list: True for both directions of every pair; False for a half list (every
            unordered pair once, a periodic self-image (i, i, S) for only one of ±S).

    Returns:
        (i, j, S, d) in vesin's order: i, j integer arrays (n_pairs,), S int32 (n_pairs, 3)
        image shifts, d float64 (n_pairs,) distances in Å.
    """
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    box = _vesin_box(np.asarray(cell, dtype=np.float64), pbc)
    periodic = pbc.tolist() if pbc.any() else False
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=full_list)
    i, j, S, d = nl.compute(np.ascontiguousarray(positions, dtype=np.float64), box, periodic,
                            quantities="ijSd")
    return i, j, np.asarray(S, np.int32).reshape(-1, 3), d


def neighbor_list(structure: Structure, cutoff: float, check_overlap: bool = True):
    """Full neighbour list within ``cutoff`` (Å).

    Returns:
        (i, j, S, d): i, j int32 arrays (n_pairs,), S int32 (n_pairs, 3) image shifts,
        d float64 (n_pairs,) distances in Å. Sorted by i (then j).

    Raises:
        OverlappingAtomsError: if ``check_overlap`` and some pair is closer than ``MIN_DISTANCE``.
    """
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    i, j, S, d = pairs_within(structure.positions, structure.cell, structure.pbc, cutoff, full_list=True)
    order = np.lexsort((j, i))
    i, j, S, d = i[order], j[order], S[order], d[order]
    if check_overlap and d.size and d.min() < MIN_DISTANCE:
        k = int(np.argmin(d))
        what = "a periodic image of itself" if i[k] == j[k] else f"atom {int(j[k])}"
        raise OverlappingAtomsError(
            f"atom {int(i[k])} overlaps {what}: distance {d[k]:.3g} Å < {MIN_DISTANCE} Å")
    return i.astype(np.int32), j.astype(np.int32), S.astype(np.int32), d
