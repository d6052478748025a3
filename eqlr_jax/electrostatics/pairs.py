"""Host-side real-space pair list for the Ewald sum (vesin), padded to a static capacity.

The list is a *half* list: every unordered pair of atoms (i, j, shift S) appears once, and a
periodic self-image (i, i, S ≠ 0) appears for only one of ±S. The jit-compiled code recomputes
the displacement as ``d = r_j − r_i + S · cell`` (differentiable in positions and cell) and
counts each entry for both members of the pair.
"""

from typing import NamedTuple

import numpy as np

from ..errors import CapacityError
from ..neighbors import pairs_within


class PairList(NamedTuple):
    """Padded half pair list (a pytree; all leaves are arrays).

    Attributes:
        i, j: (P,) int32 atom indices; padding entries are (0, 0).
        shifts: (P, 3) int32 lattice translations S (in units of the cell vectors).
        valid: (P,) bool, False for padding.
        n_found: () int32, number of pairs the neighbour search found. ``n_found > P`` means
            the list was truncated (only possible with ``on_overflow="flag"``).
    """

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    valid: np.ndarray
    n_found: np.ndarray


def estimate_pair_count(n_atoms: int, volume: float, r_cut: float) -> float:
    """Expected length of the half list for a homogeneous system: N²·(4π/3)r_c³/(2V)."""
    return n_atoms * n_atoms * (4.0 * np.pi / 3.0) * r_cut**3 / (2.0 * volume)


def empty_pair_list(capacity: int) -> PairList:
    """A pair list of ``capacity`` padding entries (all invalid)."""
    return PairList(
        i=np.zeros(capacity, np.int32), j=np.zeros(capacity, np.int32),
        shifts=np.zeros((capacity, 3), np.int32), valid=np.zeros(capacity, bool),
        n_found=np.zeros((), np.int32))


def half_pairs(positions, cell, r_cut: float):
    """Unpadded half pair list within ``r_cut`` (Å): (i, j, S) as int32 arrays (n,), (n,), (n, 3)."""
    i, j, s, _ = pairs_within(positions, cell, True, r_cut, full_list=False)
    keep = ~((i == j) & np.all(s == 0, axis=1))  # never the i = j, S = 0 term
    return i[keep].astype(np.int32), j[keep].astype(np.int32), s[keep].astype(np.int32)


def build_pair_list(positions, cell, r_cut: float, capacity: int, on_overflow: str = "raise") -> PairList:
    """All periodic pairs closer than ``r_cut`` (Å), padded to ``capacity`` entries.

    Args:
        positions: (N, 3) float, Å (need not be wrapped into the cell).
        cell: (3, 3) float, rows are lattice vectors, Å.
        r_cut: cutoff radius, Å; may exceed half the cell (vesin handles multiple images).
        capacity: static number of entries P.
        on_overflow: ``"raise"`` raises :class:`CapacityError` when more than P pairs are
            found; ``"flag"`` keeps the first P and records the true count in ``n_found``
            (the jitted ``ewald_overflow`` then reports True).
    """
    if on_overflow not in ("raise", "flag"):
        raise ValueError(f"on_overflow must be 'raise' or 'flag', got {on_overflow!r}")
    i, j, s = half_pairs(positions, cell, r_cut)
    n = len(i)
    if n > capacity and on_overflow == "raise":
        raise CapacityError(
            f"real-space pair list needs {n} entries for r_cut = {r_cut:.3f} Å but its capacity is "
            f"{capacity}; prepare again (prepare_ewald) or pass a larger pair_capacity")
    out = empty_pair_list(capacity)
    m = min(n, capacity)
    out.i[:m], out.j[:m], out.shifts[:m], out.valid[:m] = i[:m], j[:m], s[:m], True
    return out._replace(n_found=np.asarray(n, np.int32))

