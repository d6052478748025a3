"""Host-side setup of the Ewald sum (not jitted): parameters, k-vectors and static shapes.

:func:`prepare_ewald` turns a cell, an atom count, the Gaussian widths and a requested
accuracy ε into an :class:`EwaldSetup` holding

* the splitting width η (Å), the real-space cutoff r_cut and the reciprocal cutoff k_cut,
* the static shapes: pair-list capacity P and number of k-vectors K,
* the k-vectors as integer Miller indices n of one half space (k and −k are both counted by
  a factor 2), sorted by |k| and padded with a mask.

Parameter choice (s = √(−2 ln ε), γ_max = √2 · max σ):

* η = max(c · (V²/N)^{1/6}, γ_max) with c = :data:`ETA_FACTOR` (balances the O(N·pairs)
  real-space work against the O(N·K) reciprocal work; c = 1/√(2π) is the textbook value),
* r_cut = s · max(η, γ_max), so both erfc(r/√2η) and erfc(r/√2γ) are below ~ε at the cutoff,
* k_cut = s / η, so exp(−η²k²/2) < ε beyond it.

:meth:`EwaldSetup.build` then makes, for given positions and cell, the :class:`EwaldData`
pytree that the jit-compiled functions in :mod:`~eqlr_jax.electrostatics.ewald` consume.
The k-vector set stays valid while the cell changes (NPT) as long as every k with
|k| ≤ k_cut in the new cell has a Miller index in the set; this is guaranteed when
``k_cut · ‖inv(cell_ref) · cell‖₂ ≤ k_store`` (k_store = k_margin · k_cut). ``build`` raises
:class:`CapacityError` otherwise, and the jitted :func:`ewald_overflow` reports it.
"""

import dataclasses
import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

from ..errors import CapacityError
from .constants import DEFAULT_ACCURACY
from .pairs import PairList, build_pair_list, empty_pair_list, estimate_pair_count
from .validation import check_accuracy, check_cell, check_positions, check_sigmas

#: η = ETA_FACTOR · (V²/N)^{1/6}; tuned on CPU for rock-salt NaCl (see benchmarks).
ETA_FACTOR = 1.0 / math.sqrt(2.0 * math.pi)


class EwaldData(NamedTuple):
    """Everything the jitted Ewald functions need besides positions, cell, sigmas and q.

    A pytree of arrays (stack several along a new leading axis to ``vmap``).

    Attributes:
        pairs: :class:`~eqlr_jax.electrostatics.pairs.PairList`, capacity P.
        miller: (K, 3) int32 Miller indices of the half-space k-vectors (padding: 0).
        k_valid: (K,) bool, False for padding.
        ref_inv_cell: (3, 3) inverse of the cell the Miller set was built for, 1/Å.
        k_store: () radius (1/Å) in the reference cell up to which the Miller set is complete.
        eta: () splitting width η, Å.
        r_cut: () real-space cutoff, Å (pairs beyond it are masked in jit).
        k_cut: () reciprocal cutoff, 1/Å (k-vectors beyond it are masked in jit).
        slab: (3,) weights of the slab dipole correction per cell axis (0 = off, 1 = on).
    """

    pairs: PairList
    miller: np.ndarray
    k_valid: np.ndarray
    ref_inv_cell: np.ndarray
    k_store: np.ndarray
    eta: np.ndarray
    r_cut: np.ndarray
    k_cut: np.ndarray
    slab: np.ndarray


def miller_indices(cell, k_store: float) -> np.ndarray:
    """Half-space integer n ≠ 0 with |2π n · inv(cell)ᵀ| ≤ k_store, sorted by |k|; (K, 3) int32."""
    cell = np.asarray(cell, np.float64)
    recip = 2.0 * np.pi * np.linalg.inv(cell).T  # rows: reciprocal vectors b_a
    nmax = np.floor(k_store * np.linalg.norm(cell, axis=1) / (2.0 * np.pi)).astype(int)
    axes = [np.arange(-m, m + 1) for m in nmax]
    n = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    half = (n[:, 0] > 0) | ((n[:, 0] == 0) & ((n[:, 1] > 0) | ((n[:, 1] == 0) & (n[:, 2] > 0))))
    n = n[half]
    k2 = np.sum((n @ recip) ** 2, axis=1)
    keep = k2 <= k_store**2
    order = np.argsort(k2[keep], kind="stable")
    return n[keep][order].astype(np.int32)


def default_eta(volume: float, n_atoms: int, gamma_max: float = 0.0) -> float:
    """η = max(ETA_FACTOR · (V²/N)^{1/6}, γ_max) in Å."""
    return max(ETA_FACTOR * (volume * volume / max(n_atoms, 1)) ** (1.0 / 6.0), gamma_max)


def _round_up(x: float, multiple: int) -> int:
    return int(multiple * math.ceil(x / multiple))


@dataclasses.dataclass(frozen=True, eq=False)
class EwaldSetup:
    """Static Ewald setup for one structure (host object, made by :func:`prepare_ewald`).

    Attributes: ``eta``, ``r_cut`` (Å), ``k_cut``, ``k_store`` (1/Å), ``accuracy``,
    ``n_atoms``, ``pair_capacity`` (P), ``max_kvectors`` (K), ``miller`` ((K_used, 3) int),
    ``ref_cell`` ((3, 3) Å), ``slab_axis`` (None or 0/1/2).
    """

    eta: float
    r_cut: float
    k_cut: float
    k_store: float
    accuracy: float
    n_atoms: int
    pair_capacity: int
    max_kvectors: int
    miller: np.ndarray
    ref_cell: np.ndarray
    slab_axis: Optional[int] = None

    def kvector_data(self):
        """(miller (K, 3) int32, k_valid (K,) bool) padded to ``max_kvectors``."""
        k = self.max_kvectors
        miller = np.zeros((k, 3), np.int32)
        valid = np.zeros(k, bool)
        miller[: len(self.miller)] = self.miller
        valid[: len(self.miller)] = True
        return miller, valid

    def covers(self, cell) -> bool:
        """True if the Miller set holds every k with |k| ≤ k_cut for ``cell``."""
        a = np.linalg.inv(self.ref_cell) @ np.asarray(cell, np.float64)
        return self.k_cut * np.linalg.norm(a, 2) <= self.k_store * (1.0 + 1e-10)

    def build(self, positions, cell=None, on_overflow: str = "raise") -> EwaldData:
        """Host step: pair list for ``positions`` (N, 3) Å in ``cell`` (default: ref cell).

        Raises:
            ValueError: bad positions or cell.
            CapacityError: more pairs than ``pair_capacity``, or the cell changed so much
                that the k-vector set no longer covers k_cut (only with ``on_overflow="raise"``;
                with ``"flag"`` the data is returned and ``ewald_overflow`` reports True).
        """
        pos = check_positions(positions)
        if pos.shape[0] != self.n_atoms:
            raise ValueError(f"setup was prepared for {self.n_atoms} atoms, got positions {pos.shape}")
        cell = self.ref_cell if cell is None else check_cell(cell)
        if on_overflow == "raise" and not self.covers(cell):
            raise CapacityError(
                "the cell changed too much: the k-vector set no longer covers k_cut; call prepare_ewald"
                " again for the new cell (or prepare with k_margin > 1 for NPT runs)")
        pairs = build_pair_list(pos, cell, self.r_cut, self.pair_capacity, on_overflow)
        return self._data(pairs)

    def empty_data(self) -> EwaldData:
        """EwaldData with an all-padding pair list (for shape tracing / reciprocal-only use)."""
        return self._data(empty_pair_list(self.pair_capacity))

    def _data(self, pairs: PairList) -> EwaldData:
        miller, valid = self.kvector_data()
        slab = np.zeros(3)
        if self.slab_axis is not None:
            slab[self.slab_axis] = 1.0
        f = lambda x: np.asarray(x, np.float64)  # noqa: E731
        return EwaldData(pairs=pairs, miller=miller, k_valid=valid,
                         ref_inv_cell=np.linalg.inv(self.ref_cell), k_store=f(self.k_store),
                         eta=f(self.eta), r_cut=f(self.r_cut), k_cut=f(self.k_cut), slab=slab)


def prepare_ewald(cell, n_atoms: int, sigmas=0.0, accuracy: float = DEFAULT_ACCURACY, *,
                  eta: Optional[float] = None, pair_capacity: Optional[int] = None,
                  max_kvectors: Optional[int] = None, k_margin: float = 1.0,
                  pair_margin: float = 1.25, slab_axis: Optional[int] = None,
                  positions=None) -> EwaldSetup:
    """Choose Ewald parameters and static shapes for a periodic cell (host, not jitted).

    Args:
        cell: (3, 3) lattice vectors as rows, Å.
        n_atoms: number of atoms N (the padded count if atoms are padded).
        sigmas: Gaussian widths σ, scalar or (N,), Å (only max σ matters here).
        accuracy: requested relative accuracy ε (default 1e-6); fixes s = √(−2 ln ε).
        eta: override the splitting width η (Å); r_cut and k_cut follow from it.
        pair_capacity: static pair-list length P; default = pair_margin × the larger of the
            homogeneous estimate N²(4π/3)r_cut³/(2V) and (if ``positions`` are given) the
            actual count, rounded up.
        max_kvectors: static number of k-vectors K; default = the number needed.
        k_margin: ≥ 1; Miller indices are kept up to k_margin·k_cut so that cell changes
            (NPT) stay covered; the extra vectors are masked out in jit while unneeded.
        pair_margin: safety factor of the default pair capacity.
        slab_axis: None (default, 3-D tin-foil Ewald) or 0/1/2 to add the slab dipole
            correction normal to the plane of the other two cell vectors (see ``surface``).
        positions: optional (N, 3) Å; when given, the default pair capacity also covers the
            actual number of pairs (needed for slabs and clusters in vacuum, where the
            homogeneous estimate is too low).

    Raises:
        ValueError: singular cell, negative σ, bad accuracy, or explicit capacities that
            cannot meet the accuracy (``pair_capacity`` below the estimate, ``max_kvectors``
            below the number of k-vectors within k_cut).
    """
    cell = check_cell(cell)
    if int(n_atoms) < 1:
        raise ValueError(f"n_atoms must be >= 1, got {n_atoms}")
    n_atoms = int(n_atoms)
    sig = check_sigmas(sigmas, n_atoms) if np.ndim(sigmas) else check_sigmas(sigmas, 1)
    acc = check_accuracy(accuracy)
    if k_margin < 1.0:
        raise ValueError(f"k_margin must be >= 1, got {k_margin}")
    if slab_axis not in (None, 0, 1, 2):
        raise ValueError(f"slab_axis must be None, 0, 1 or 2, got {slab_axis}")
    volume = abs(np.linalg.det(cell))
    gamma_max = math.sqrt(2.0) * float(sig.max())
    s = math.sqrt(-2.0 * math.log(acc))
    if eta is None:
        eta = default_eta(volume, n_atoms, gamma_max)
    elif not (eta > 0 and math.isfinite(eta)):
        raise ValueError(f"eta must be a positive number (Å), got {eta}")
    eta = float(eta)
    r_cut = s * max(eta, gamma_max)
    k_cut = s / eta
    k_store = k_cut * k_margin
    miller = miller_indices(cell, k_store)
    needed_k = int(np.sum(np.sum((miller @ (2 * np.pi * np.linalg.inv(cell).T)) ** 2, 1) <= k_cut**2))
    if max_kvectors is None:
        max_kvectors = max(len(miller), 1)
    elif max_kvectors < needed_k:
        raise ValueError(
            f"accuracy {acc:g} with eta = {eta:.4g} Å needs {needed_k} k-vectors (k_cut = {k_cut:.4g}/Å)"
            f" but max_kvectors = {max_kvectors}; raise max_kvectors, lower the accuracy or pass a larger eta")
    else:
        miller = miller[:max_kvectors]  # sorted by |k|: drops only margin vectors
        k_store = min(k_store, _covered_radius(cell, miller, k_store))
    estimate = estimate_pair_count(n_atoms, volume, r_cut)
    if pair_capacity is None:
        if positions is not None:
            pos = check_positions(positions)
            found = int(build_pair_list(pos, cell, r_cut, 0, on_overflow="flag").n_found)
            estimate = max(estimate, found)
        pair_capacity = _round_up(pair_margin * estimate + 32, 64)
    elif pair_capacity < estimate:
        raise ValueError(
            f"accuracy {acc:g} needs r_cut = {r_cut:.3f} Å, about {estimate:.0f} real-space pairs, but"
            f" pair_capacity = {pair_capacity}; raise pair_capacity or lower the accuracy")
    return EwaldSetup(eta=eta, r_cut=r_cut, k_cut=k_cut, k_store=float(k_store), accuracy=acc,
                      n_atoms=n_atoms, pair_capacity=int(pair_capacity), max_kvectors=int(max_kvectors),
                      miller=miller, ref_cell=cell.copy(), slab_axis=slab_axis)


def _covered_radius(cell, miller, k_store):
    """Largest radius up to which a |k|-sorted, truncated Miller list is complete."""
    recip = 2.0 * np.pi * np.linalg.inv(cell).T
    full = miller_indices(cell, k_store)
    if len(full) <= len(miller):
        return k_store
    return float(np.linalg.norm(full[len(miller)] @ recip)) * (1.0 - 1e-12)


def prepare_ewald_batch(cells: Sequence, n_atoms, sigmas=0.0, accuracy: float = DEFAULT_ACCURACY,
                        **kwargs) -> list:
    """One :class:`EwaldSetup` per cell, all with the same static shapes (max P, max K).

    ``n_atoms`` and ``sigmas`` may be single values or one per cell. Each structure keeps its
    own η, r_cut and k_cut. Stack the built data with :func:`stack_ewald_data` and ``vmap``.
    """
    m = len(cells)
    ns = list(n_atoms) if np.ndim(n_atoms) else [n_atoms] * m
    sg = list(sigmas) if isinstance(sigmas, (list, tuple)) else [sigmas] * m
    first = [prepare_ewald(c, n, s, accuracy, **kwargs) for c, n, s in zip(cells, ns, sg)]
    kw = dict(kwargs, pair_capacity=max(f.pair_capacity for f in first),
              max_kvectors=max(f.max_kvectors for f in first))
    return [prepare_ewald(c, n, s, accuracy, **kw) for c, n, s in zip(cells, ns, sg)]


def stack_ewald_data(datas: Sequence[EwaldData]) -> EwaldData:
    """Stack same-shaped EwaldData along a new leading axis (for ``jax.vmap``)."""
    import jax

    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *datas)
