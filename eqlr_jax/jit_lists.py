"""Jit-able neighbour lists for :mod:`eqlr_jax.jax_md`: padded edge lists sorted by receiver,
built by brute force over atom pairs, and compacted to the pairs within the cutoff.

Two ways to enumerate candidates (chosen on the host, per list, by :func:`list_mode`):

* **minimum image** (``extent is None``): when the cutoff (skin included) is below half of every
  periodic cell height, a pair has at most one image within it, the one of the rounded
  fractional difference (a vector shorter than h/2 has every fractional component in (−½, ½)).
  N² candidates.
* **stencil** (``extent`` a tuple): every pair under every lattice translation of a stencil of
  ±extent cells (the algorithm of ``jax_md.custom_partition.neighbor_list_multi_image``), for
  cells small compared with the cutoff. S·N² candidates, S = Π(2 extent + 1).

A list with a skin holds every pair within cutoff + skin, more than the model needs at any one
step (a third more at a 5 Å cutoff and a 0.5 Å skin). :func:`compact` picks, at each evaluation,
the entries within the cutoff into a smaller fixed capacity, so the network and the Ewald
real-space sum do no work on the skin.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


def heights(cell):
    """(3,) distances between opposite faces of the cell with rows ``cell`` (NumPy or jnp)."""
    lib = jnp if isinstance(cell, jax.Array) else np
    inv = lib.linalg.inv(cell)
    return 1.0 / lib.linalg.norm(inv, axis=0)


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


def mode_overflows(extent, cell, cutoff: float, pbc):
    """() bool: the list mode no longer finds every neighbour in ``cell`` (jit-able)."""
    h = heights(cell)
    p = jnp.asarray(pbc)
    if extent is None:
        return jnp.any(p & (cutoff >= 0.5 * h))
    return jnp.any(jnp.where(p, jnp.ceil(cutoff / h), 0.0) > jnp.asarray(extent, h.dtype))


def image_reach(extent, pbc) -> np.ndarray:
    """(3,) largest translation (cells) an entry can carry along each axis."""
    return np.where(np.asarray(pbc), 1, 0) if extent is None else np.asarray(extent)


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
    """Flat bool over the candidates, receiver-major: (i, j) (minimum image) or (i, s, j).

    ``x``: Cartesian positions; ``u``: fractional ones (periodic; for an open structure ``u`` is
    ``x`` and ``cell`` zero). ``half``: each unordered pair once (i < j; for i = j one of ±s)."""
    n = x.shape[0]
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
