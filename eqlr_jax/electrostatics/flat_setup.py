"""Host-side set-up of the long-range data of a flat batch (see :mod:`.flat`).

:func:`structure_parts` chooses, for one structure, how its electrostatics is summed and
returns its pairs and k-vectors; :func:`assemble_flat_data` pads the parts of many
structures into one :class:`~eqlr_jax.electrostatics.flat.FlatData`.

* No periodic axis: open boundaries, every pair i < j of the structure.
* Three periodic axes: Ewald in the cell (parameters as :func:`~.ewald_setup.prepare_ewald`:
  η = max(c (V²/N)^{1/6}, γ_max), r_cut = s max(η, γ_max), k_cut = s/η, s = √(−2 ln ε)).
* Two periodic axes (a slab): Ewald in the 3-D cell, whose third vector must span the vacuum,
  plus the slab dipole correction along that axis (:mod:`.surface`).
* One periodic axis (a wire) is not supported.

``gamma_max`` = √2 max σ bounds the Gaussian pair widths: a model whose widths are learned
passes the largest width it can reach, so the cutoffs stay valid as the widths train.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .constants import DEFAULT_ACCURACY
from .ewald_setup import ETA_FACTOR, miller_indices
from .pairs import half_pairs
from .validation import check_accuracy, check_cell

__all__ = ["StructureParts", "structure_parts", "ewald_parameters", "assemble_flat_data"]


class StructureParts(NamedTuple):
    """Long-range terms of one structure (local atom indices)."""

    i: np.ndarray        # (p,) int32
    j: np.ndarray        # (p,) int32
    shifts: np.ndarray   # (p, 3) int32
    miller: np.ndarray   # (k, 3) int32
    eta: float           # Å (1.0 when open)
    r_cut: float         # Å (inf when open)
    periodic: bool
    slab: np.ndarray     # (3,) weights


def structure_parts(positions, cell, pbc, gamma_max: float, accuracy: float = DEFAULT_ACCURACY,
                    eta_factor: float = ETA_FACTOR) -> StructureParts:
    """Pairs, k-vectors and Ewald parameters of one structure.

    Args:
        positions: (n, 3) Å. cell: (3, 3) Å, rows are lattice vectors. pbc: (3,) bool.
        gamma_max: largest pair width √2 σ_max the charges can have, Å.
        accuracy: relative accuracy ε of the Ewald sum.
        eta_factor: c in η = c (V²/N)^{1/6}: larger moves work from reciprocal to real space.

    Raises:
        ValueError: a 1-D periodic structure, a slab whose cell has no vacuum vector (singular
            cell), or a bad accuracy.
    """
    pos = np.asarray(positions, np.float64)
    pbc = np.asarray(pbc, bool)
    n = pos.shape[0]
    if not pbc.any():
        i, j = np.triu_indices(n, k=1)
        return StructureParts(i.astype(np.int32), j.astype(np.int32), np.zeros((len(i), 3), np.int32),
                              np.zeros((0, 3), np.int32), 1.0, math.inf, False, np.zeros(3))
    if pbc.sum() == 1:
        raise ValueError("long-range electrostatics of 1-D periodic structures (wires) is not supported;"
                         " make the structure 3-D periodic (vacuum in the cell) or a slab (two periodic axes)")
    try:
        cell = check_cell(cell)
    except ValueError as e:
        raise ValueError(f"{e}. A slab (pbc={pbc.tolist()}) needs a 3-D cell whose non-periodic vector"
                         " spans the vacuum") from e
    eta, r_cut, k_cut = ewald_parameters(cell, n, gamma_max, accuracy, eta_factor)
    i, j, shifts = half_pairs(pos, cell, r_cut)
    slab = (~pbc).astype(np.float64)
    return StructureParts(i, j, shifts, miller_indices(cell, k_cut), eta, r_cut, True, slab)


def ewald_parameters(cell, n_atoms: int, gamma_max: float, accuracy: float = DEFAULT_ACCURACY,
                     eta_factor: float = ETA_FACTOR) -> tuple[float, float, float]:
    """(η, r_cut, k_cut) of the Ewald sum of a periodic cell: η = max(c (V²/N)^{1/6}, γ_max) Å,
    r_cut = s max(η, γ_max) Å, k_cut = s/η 1/Å, s = √(−2 ln ε)."""
    acc = check_accuracy(accuracy)
    s = math.sqrt(-2.0 * math.log(acc))
    eta = max(eta_factor * (abs(np.linalg.det(np.asarray(cell, np.float64))) ** 2 / max(n_atoms, 1)) ** (1.0 / 6.0),
              gamma_max)
    return float(eta), float(s * max(eta, gamma_max)), float(s / eta)


def assemble_flat_data(parts, node_offsets, n_pair: int, n_kvector: int, n_graph: int, dtype):
    """Pad the parts of the structures into one FlatData (NumPy leaves; the caller moves them).

    ``node_offsets[g]`` is the index of structure g's first atom in the flat batch; structure
    slots past ``len(parts)`` are padding (open, no pairs).
    """
    from .flat import FlatData

    pi = np.zeros(n_pair, np.int32)
    pj = np.zeros(n_pair, np.int32)
    ps = np.zeros((n_pair, 3), dtype)
    pm = np.zeros(n_pair, bool)
    mil = np.zeros((n_kvector, 3), dtype)
    kg = np.full(n_kvector, n_graph - 1, np.int32)
    km = np.zeros(n_kvector, bool)
    eta = np.ones(n_graph, dtype)
    rc = np.full(n_graph, np.inf, dtype)
    per = np.zeros(n_graph, bool)
    slab = np.zeros((n_graph, 3), dtype)
    p0 = k0 = 0
    for g, (part, off) in enumerate(zip(parts, node_offsets)):
        p, k = len(part.i), len(part.miller)
        if p0 + p > n_pair or k0 + k > n_kvector:
            raise ValueError("assemble_flat_data: capacities too small (the caller must size them)")
        pi[p0:p0 + p], pj[p0:p0 + p] = part.i + off, part.j + off
        ps[p0:p0 + p], pm[p0:p0 + p] = part.shifts, True
        mil[k0:k0 + k], kg[k0:k0 + k], km[k0:k0 + k] = part.miller, g, True
        eta[g], rc[g], per[g], slab[g] = part.eta, part.r_cut, part.periodic, part.slab
        p0, k0 = p0 + p, k0 + k
    return FlatData(pair_i=pi, pair_j=pj, pair_shift=ps, pair_mask=pm, miller=mil, k_graph=kg, k_mask=km,
                    eta=eta, r_cut=rc, periodic=per, slab=slab)
