"""Jit-able neighbour lists for :mod:`eqlr_jax.jax_md`: padded edge lists sorted by receiver,
built by brute force over atom pairs (or through a cell list), compacted to the pairs within the
cutoff, and :class:`NeighborList`, the pytree of one system's lists that jax-md carries.

Three ways to enumerate candidates (chosen on the host, per list, by :func:`list_mode` and
:func:`bins_mode`):

* **minimum image** (``extent is None``): when the cutoff (skin included) is below half of every
  periodic cell height, a pair has at most one image within it, the one of the rounded
  fractional difference (a vector shorter than h/2 has every fractional component in (−½, ½)).
  N² candidates.
* **stencil** (``extent`` a tuple): every pair under every lattice translation of a stencil of
  ±extent cells (the algorithm of ``jax_md.custom_partition.neighbor_list_multi_image``), for
  cells small compared with the cutoff. S·N² candidates, S = Π(2 extent + 1).
* **bins** (``extent`` a :class:`Bins`): minimum image, with the candidates of atom i only the
  atoms of its own and the 26 adjacent bins of a grid along the lattice vectors whose bins are
  at least the cutoff thick (3-D periodic cells at least three cutoffs across; the usual cell
  list, in fractional coordinates so that it holds for any triclinic cell). 27·M·N candidates
  (M atoms per bin at most) instead of N²: what makes rebuilds affordable beyond a few
  thousand atoms.

A list with a skin holds every pair within cutoff + skin, more than the model needs at any one
step (a third more at a 5 Å cutoff and a 0.5 Å skin). :func:`compact` picks, at each evaluation,
the entries within the cutoff into a smaller fixed capacity, so the network and the Ewald
real-space sum do no work on the skin.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def heights(cell):
    """(3,) distances between opposite faces of the cell with rows ``cell`` (NumPy or jnp)."""
    lib = jnp if isinstance(cell, jax.Array) else np
    inv = lib.linalg.inv(cell)
    return 1.0 / lib.linalg.norm(inv, axis=0)


#: bins are chosen this much thicker than the cutoff, so that a cell may shrink a little (NPT)
#: before the grid no longer serves it and the lists are reallocated
BIN_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class Bins:
    """The bins mode of a list (static, hashable): ``cells`` (3,) bins along the lattice
    vectors, each holding at most ``capacity`` atoms."""

    cells: tuple
    capacity: int


def list_mode(cell, cutoff: float, pbc):
    """``None`` (minimum image) where it is exact for this cell, else the stencil extent (host)."""
    h = heights(np.asarray(cell, np.float64))
    if all(cutoff < 0.5 * h[a] * (1 - 1e-9) for a in range(3) if pbc[a]):
        return None
    return tuple(int(math.ceil(cutoff / h[a])) if pbc[a] else 0 for a in range(3))


def merge_modes(modes):
    """One mode that serves every cell of ``modes``: minimum image only if all allow it."""
    stencils = [m for m in modes if m is not None]
    if not stencils:
        return None
    return tuple(np.max(stencils, axis=0).tolist())


def bin_occupancy(u, cells) -> int:
    """Most atoms in one bin of a grid of ``cells`` (3,) bins over fractional positions ``u`` (host)."""
    nc = np.asarray(cells)
    b = np.clip(np.floor((u - np.floor(u)) * nc).astype(np.int64), 0, nc - 1)
    return int(np.bincount(np.ravel_multi_index(b.T, tuple(nc)), minlength=1).max())


def bins_mode(mode, cells, us, cutoff: float, pbc, use: bool | str = "auto"):
    """``mode`` (of :func:`merge_modes`) replaced by :class:`Bins` where a grid serves every cell
    of ``cells`` (host): minimum image, 3-D periodic, at least 3 bins along every axis of
    thickness ≥ cutoff × (1 + :data:`BIN_MARGIN`), fewer bins than twice the atoms (thicker bins
    in dilute systems); room for 1.5× the most atoms that a bin holds
    in any of the fractional positions ``us`` (plus 2). ``use``: True, False or ``"auto"`` (bins
    when they test fewer candidates than the N² pairs)."""
    if use is False or mode is not None or not np.all(pbc):
        return mode
    h = np.min([heights(np.asarray(c, np.float64)) for c in cells], axis=0)
    nc = np.floor(h / (cutoff * (1.0 + BIN_MARGIN))).astype(int)
    if np.any(nc < 3):
        return mode
    while np.prod(nc) > max(2 * len(us[0]), 27) and nc.max() > 3:  # dilute: no more bins than atoms
        nc[np.argmax(nc)] -= 1
    nc = tuple(int(v) for v in nc)
    capacity = int(math.ceil(1.5 * max(bin_occupancy(np.asarray(u, np.float64), nc) for u in us))) + 2
    if use == "auto" and 27 * capacity >= len(us[0]):
        return mode
    return Bins(nc, capacity)


def mode_overflows(extent, cell, cutoff: float, pbc):
    """() bool: the list mode no longer finds every neighbour in ``cell`` (jit-able; a bin
    that overflows is reported by the list's ``count``)."""
    h = heights(cell)
    p = jnp.asarray(pbc)
    if isinstance(extent, Bins):
        return jnp.any(cutoff * jnp.asarray(extent.cells, h.dtype) > h * (1.0 - 1e-6))
    if extent is None:
        return jnp.any(p & (cutoff >= 0.5 * h))
    return jnp.any(jnp.where(p, jnp.ceil(cutoff / h), 0.0) > jnp.asarray(extent, h.dtype))


def image_reach(extent, pbc) -> np.ndarray:
    """(3,) largest translation (cells) an entry can carry along each axis."""
    if extent is None or isinstance(extent, Bins):
        return np.where(np.asarray(pbc), 1, 0)
    return np.asarray(extent)


def stencil(extent) -> np.ndarray:
    """(S, 3) integer translations, row s and row S−1−s opposite; the zero one in the middle."""
    axes = [np.arange(-n, n + 1) for n in extent]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.int32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Edges:
    """One padded edge list: entry e is atom ``senders[e]`` under translation ``shifts[e]`` seen
    from atom ``receivers[e]`` (vector x_s − x_r + shifts @ cell at the list's reference
    positions); sorted by receiver; padding (N−1, N−1, 0) with ``mask`` False."""

    receivers: jax.Array  # (E,) int32
    senders: jax.Array    # (E,) int32
    shifts: jax.Array     # (E, 3) int32
    mask: jax.Array       # (E,) bool
    count: jax.Array      # () int32: entries found (> E means the list overflowed)

    @property
    def capacity(self) -> int:
        return self.receivers.shape[0]


def candidates(x, u, cell, pbc, extent, cutoff: float, half: bool):
    """Flat bool over the candidates, receiver-major: (i, j) (minimum image), (i, s, j) (stencil)
    or (i, bin neighbour) (bins).

    ``x``: Cartesian positions; ``u``: fractional ones (periodic; for an open structure ``u`` is
    ``x`` and ``cell`` zero). ``half``: each unordered pair once (i < j; for i = j one of ±s)."""
    n = x.shape[0]
    if isinstance(extent, Bins):  # (N, 27 M), a subset of the minimum-image pairs
        return _binned(u, cell, extent, cutoff, half)[0].reshape(-1)
    if extent is None:
        ii, jj = jnp.arange(n)[:, None], jnp.arange(n)[None, :]
        if np.any(pbc):
            du = u[None, :, :] - u[:, None, :]
            d = (du - jnp.where(jnp.asarray(pbc), jnp.round(du), 0.0)) @ cell
        else:
            d = x[None, :, :] - x[:, None, :]
        ok = jnp.sum(d * d, axis=-1) < cutoff * cutoff
        return (ok & ((ii < jj) if half else (ii != jj))).reshape(-1)
    st = stencil(extent)
    s, zero = st.shape[0], st.shape[0] // 2
    sh = jnp.asarray(st, x.dtype) @ cell                                        # (S, 3)
    d = x[None, None, :, :] + sh[None, :, None, :] - x[:, None, None, :]        # (N_i, S, N_j, 3)
    ok = jnp.sum(d * d, axis=-1) < cutoff * cutoff
    ii, jj, ss = jnp.arange(n)[:, None, None], jnp.arange(n)[None, None, :], jnp.arange(s)[None, :, None]
    if half:
        ok = ok & ((ii < jj) | ((ii == jj) & (ss > zero)))
    else:
        ok = ok & ~((ii == jj) & (ss == zero))
    return ok.reshape(-1)


def build_edges(x, u, cell, pbc, extent, cutoff: float, capacity: int, half: bool) -> Edges:
    """Every (receiver i, sender j, translation) within ``cutoff`` (jit-able), padded to
    ``capacity``; enumerated receiver-major, so the list comes out sorted by receiver."""
    n = x.shape[0]
    if isinstance(extent, Bins):
        return _build_binned(u, cell, extent, cutoff, capacity, half)
    flat = candidates(x, u, cell, pbc, extent, cutoff, half)
    count = jnp.sum(flat, dtype=jnp.int32)
    (idx,) = jnp.nonzero(flat, size=capacity, fill_value=flat.shape[0] - 1)
    if extent is None:
        rec, snd = idx // n, idx % n
        du = u[snd] - u[rec]
        shifts = -jnp.where(jnp.asarray(pbc), jnp.round(du), 0.0).astype(jnp.int32)
    else:
        st = stencil(extent)
        s = st.shape[0]
        rec, snd = idx // (s * n), idx % n
        shifts = jnp.asarray(st)[(idx // n) % s]
    mask = jnp.arange(capacity) < count
    shifts = jnp.where(mask[:, None], shifts, 0)  # the padding (N−1, N−1, 0)
    return Edges(rec.astype(jnp.int32), snd.astype(jnp.int32), shifts, mask, count)


def _binned(u, cell, bins: Bins, cutoff: float, half: bool):
    """The bins mode's candidates: atom i against the atoms of its own and the 26 adjacent bins
    (all distinct, as every axis has ≥ 3 bins), minimum image. Returns (N, 27 M) bool (within
    ``cutoff``), the (N, 27 M) candidate atoms and () bool: a bin held more than M atoms."""
    n, m = u.shape[0], bins.capacity
    nc = jnp.asarray(bins.cells, jnp.int32)
    b3 = jnp.clip(jnp.floor((u - jnp.floor(u)) * nc).astype(jnp.int32), 0, nc - 1)   # (N, 3)
    flat_bin = lambda b: (b[..., 0] * nc[1] + b[..., 1]) * nc[2] + b[..., 2]  # noqa: E731
    bid = flat_bin(b3)
    order = jnp.argsort(bid)
    sorted_bid = bid[order]
    n_bins = math.prod(bins.cells)
    start = jnp.searchsorted(sorted_bid, jnp.arange(n_bins, dtype=sorted_bid.dtype))
    slot = jnp.arange(n, dtype=jnp.int32) - start[sorted_bid].astype(jnp.int32)
    table = jnp.full((n_bins, m), n, jnp.int32).at[sorted_bid, slot].set(order.astype(jnp.int32), mode="drop")
    offsets = jnp.asarray(np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3))
    near = flat_bin((b3[:, None, :] + offsets[None, :, :]) % nc)                          # (N, 27)
    cand = table[near].reshape(n, 27 * m)                                                 # (N, 27 M), N = none
    j = jnp.minimum(cand, n - 1)
    du = u[j] - u[:, None, :]
    d = (du - jnp.round(du)) @ cell
    i = jnp.arange(n)[:, None]
    ok = (cand < n) & (jnp.sum(d * d, axis=-1) < cutoff * cutoff) & ((i < cand) if half else (i != cand))
    return ok, j, jnp.max(slot) >= m


def _build_binned(u, cell, bins: Bins, cutoff: float, capacity: int, half: bool) -> Edges:
    """:func:`build_edges` for the bins mode; a crowded bin makes ``count`` exceed ``capacity``."""
    n, m = u.shape[0], bins.capacity
    ok, j, bin_overflow = _binned(u, cell, bins, cutoff, half)
    flat = ok.reshape(-1)
    found = jnp.sum(flat, dtype=jnp.int32)
    (idx,) = jnp.nonzero(flat, size=capacity, fill_value=flat.shape[0] - 1)
    mask = jnp.arange(capacity) < found
    rec = jnp.where(mask, idx // (27 * m), n - 1).astype(jnp.int32)
    snd = jnp.where(mask, j.reshape(-1)[idx], n - 1)
    shifts = jnp.where(mask[:, None], -jnp.round(u[snd] - u[rec]).astype(jnp.int32), 0)
    return Edges(rec, snd, shifts, mask, jnp.where(bin_overflow, jnp.maximum(found, capacity + 1), found))


def compact(edges: Edges, shifts, vec, cutoff: float, capacity: int, n: int):
    """The entries of ``edges`` with |vec| < cutoff, in order, padded to ``capacity`` with
    (N−1, N−1, 0): (receivers, senders, shifts, mask, count). ``count`` > ``capacity`` means
    entries were lost (the caller flags it). ``shifts``: the entries' current shifts."""
    inside = edges.mask & (jnp.sum(jax.lax.stop_gradient(vec) ** 2, axis=-1) < cutoff * cutoff)
    count = jnp.sum(inside, dtype=jnp.int32)
    (idx,) = jnp.nonzero(inside, size=capacity, fill_value=edges.capacity - 1)
    mask = jnp.arange(capacity) < count
    rec = jnp.where(mask, edges.receivers[idx], n - 1)
    snd = jnp.where(mask, edges.senders[idx], n - 1)
    return rec, snd, jnp.where(mask[:, None], shifts[idx], 0), mask, count


def at_least(mode, capacity: int):
    """``mode`` with room for at least ``capacity`` atoms per bin, where it is a grid of bins."""
    if isinstance(mode, Bins) and capacity > mode.capacity:
        return Bins(mode.cells, int(capacity))
    return mode


# ---------------------------------------------------------------------------------------------
# the lists of one system, as jax-md's NeighborList


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NeighborList:
    """The neighbour lists of one system (a pytree): the network's edges (``sr``), the Ewald
    real-space pairs (``lr``, periodic long-range models, else None), the Miller indices of the
    k-vectors (``miller``, idem) and the reference the lists were built from.

    ``did_buffer_overflow`` is True when a list (or a bin) ran out of capacity, the cell has
    shrunk below the image stencil or the bins, or stretched past the k-vector margin: reallocate with
    ``neighbor_fn.allocate(R, box=...)`` and redo the steps since the last good list.
    """

    sr: Edges
    lr: Edges | None
    miller: jax.Array | None      # (K, 3) in the positions' dtype
    reference_position: jax.Array  # (N, 3) fractional (periodic) or Cartesian (open), at the last build
    reference_box: jax.Array | None  # (3, 3) jax-md box at the last build (None: open)
    box: jax.Array | None          # (3, 3) jax-md box of the last update (None: open)
    kvector_box: jax.Array | None  # (3, 3) jax-md box the Miller indices were chosen for
    kvector_cover: jax.Array | None  # () largest stretch σ_max(C_k⁻¹ C) the Miller set covers
    did_buffer_overflow: jax.Array
    update_fn: Callable = dataclasses.field(metadata=dict(static=True), default=None)
    # how a rebuild enumerates candidates: None (minimum image), a stencil extent or Bins (jit_lists)
    sr_extent: tuple | Bins | None = dataclasses.field(metadata=dict(static=True), default=None)
    lr_extent: tuple | Bins | None = dataclasses.field(metadata=dict(static=True), default=None)
    sr_compact: int = dataclasses.field(metadata=dict(static=True), default=0)  # edges within r_max
    lr_compact: int = dataclasses.field(metadata=dict(static=True), default=0)  # pairs within the Ewald cutoff

    def update(self, position, **kwargs) -> "NeighborList":
        """The lists for new positions (and ``box=``), rebuilt in place when needed (jit-able)."""
        return self.update_fn(position, self, **kwargs)

    @property
    def capacities(self) -> tuple[int, int, int, int, int]:
        """Capacities (0 where absent): network edges and Ewald pairs within cutoff + skin,
        k-vectors, and the edges and pairs within the cutoffs (what the model evaluates)."""
        return (self.sr.capacity, 0 if self.lr is None else self.lr.capacity,
                0 if self.miller is None else self.miller.shape[0], self.sr_compact, self.lr_compact)

    @property
    def bin_capacities(self) -> tuple[int, int]:
        """Atoms per bin of the two lists' grids (0 for a list rebuilt without bins)."""
        return tuple(m.capacity if isinstance(m, Bins) else 0 for m in (self.sr_extent, self.lr_extent))

    @property
    def idx(self):
        """(receivers, senders) of the network's edges, as jax-md's sparse lists."""
        return self.sr.receivers, self.sr.senders


class NeighborFns(NamedTuple):
    """``allocate(R, extra_capacity=0, box=None)`` (host, not jit-able: sizes the lists) and
    ``update(R, neighbors, box=None)`` (jit-able), as jax-md's ``NeighborListFns``."""

    allocate: Callable
    update: Callable
