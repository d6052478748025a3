"""Electrostatics of a flat batch: many structures in one padded set of arrays. Pure, jit-able.

A flat batch holds G structure slots and N atom slots; ``node_graph`` (N,) says which structure
each atom belongs to and ``node_mask`` (N,) which atoms are real. Each structure is either

* open (no periodicity): all pairs within the structure, kernel erf(r/√2γ)/r, or
* periodic (Ewald, 3-D tin-foil; a slab adds the dipole correction along its non-periodic
  axis): real-space pairs within the structure's own cutoff, its own k-vectors, its own
  splitting width η, and the neutralising background for a net charge.

The formulas are those of :mod:`~eqlr_jax.electrostatics.coulomb` (open) and
:mod:`~eqlr_jax.electrostatics.ewald` (periodic), evaluated structure by structure with
segment sums, so no two structures ever interact. The long-range data (pairs, k-vectors,
per-structure η) is a :class:`FlatData` pytree built on the host by
:func:`~eqlr_jax.electrostatics.flat_setup.build_flat_data`.

The k-vector set is a fixed list of Miller indices per structure with no cutoff mask in
jit: the energy is a smooth function of the cell (a strained cell keeps the same terms).

Shapes: positions (N, 3) Å, cell (G, 3, 3) Å (rows are lattice vectors), sigmas (N,) Å,
q (N,) e. Energies in eV, potentials in eV/e, matrices in eV/e².
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from .constants import KE
from .kernels import erf_over_r, screened_over_r

__all__ = ["FlatData", "FlatOperator", "flat_operator", "flat_energy", "flat_matrix"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FlatData:
    """Long-range data of a flat batch: P pairs, K k-vectors, G structure slots.

    Attributes:
        pair_i, pair_j: (P,) int32 atom indices (a half list: each pair once; padding 0, 0).
        pair_shift: (P, 3) integer image shifts S in the positions' float dtype; the pair
            vector is ``positions[j] - positions[i] + S @ cell[graph of i]``.
        pair_mask: (P,) bool, False for padding.
        miller: (K, 3) integer Miller indices (float dtype) of half-space k-vectors.
        k_graph: (K,) int32 structure each k-vector belongs to.
        k_mask: (K,) bool, False for padding.
        eta: (G,) Ewald splitting width η, Å (1 for open structures, unused there).
        r_cut: (G,) real-space cutoff, Å; pairs beyond it are masked (inf for open structures).
        periodic: (G,) bool, True for structures summed with Ewald.
        slab: (G, 3) slab-correction weight per cell axis (0 = off, 1 = on).
    """

    pair_i: jax.Array
    pair_j: jax.Array
    pair_shift: jax.Array
    pair_mask: jax.Array
    miller: jax.Array
    k_graph: jax.Array
    k_mask: jax.Array
    eta: jax.Array
    r_cut: jax.Array
    periodic: jax.Array
    slab: jax.Array

    @property
    def n_pair_capacity(self) -> int:
        return self.pair_i.shape[-1]

    @property
    def n_kvector_capacity(self) -> int:
        return self.miller.shape[-2]


def _segment(x, seg, n):
    return jax.ops.segment_sum(x, seg, num_segments=n)


def _slab_geometry(cell):
    """Per structure: unit normals (G, 3, 3), heights (G, 3), volumes (G,) (see ``surface``)."""
    recip = jnp.swapaxes(jnp.linalg.inv(cell), -1, -2)
    inv_h = jnp.linalg.norm(recip, axis=-1)
    return recip / inv_h[..., None], 1.0 / inv_h


@dataclasses.dataclass(frozen=True)
class FlatOperator:
    """The Coulomb matrix M of a flat batch, precomputed for repeated mat-vecs (a pytree).

    ``matvec(q)`` costs a gather/scatter over the P pairs and four (K, N) mat-vecs. Everything
    is already multiplied by k_e. Built by :func:`flat_operator`.
    """

    pair_i: jax.Array       # (P,)
    pair_j: jax.Array       # (P,)
    pair_kernel: jax.Array  # (P,) eV/e²
    cos: jax.Array          # (K, N), zero where atom and k-vector belong to different structures
    sin: jax.Array          # (K, N)
    k_weight: jax.Array     # (K,) eV/e², 2 k_e W_k
    diag: jax.Array         # (N,) eV/e², self terms
    self_energy: jax.Array  # (N,) eV/e², k_e/(√π σ_i): the Gaussian self term alone
    bg_a: jax.Array         # (N,) k_e (2π/V)(σ_i² − η²) on periodic atoms, else 0
    bg_b: jax.Array         # (N,) k_e (2π/V) σ_i² on periodic atoms, else 0
    slab_z: jax.Array       # (N, 3) coordinate along each axis normal
    slab_zz: jax.Array      # (N, 3) z² + σ²
    slab_c: jax.Array       # (N, 3) k_e (2π/V) w_a of the atom's structure
    slab_h2: jax.Array      # (N, 3) h_a² / 6 of the atom's structure
    node_graph: jax.Array   # (N,)
    mask: jax.Array         # (N,) bool
    real_dense: jax.Array | None = None  # (N, N) eV/e²: the pair terms as a matrix, or None
    n_graph: int = dataclasses.field(metadata=dict(static=True), default=1)

    def matvec(self, q):
        """φ = M q (N,), eV/e, for charges q (N,) e (0 on masked atoms)."""
        q = jnp.where(self.mask, q, 0.0)
        n, g, seg = q.shape[0], self.n_graph, self.node_graph
        if self.real_dense is not None:
            phi = self.real_dense @ q
        else:
            phi = _segment(self.pair_kernel * q[self.pair_j], self.pair_i, n)
            phi = phi + _segment(self.pair_kernel * q[self.pair_i], self.pair_j, n)
        phi = phi + (self.k_weight * (self.cos @ q)) @ self.cos + (self.k_weight * (self.sin @ q)) @ self.sin
        qt = _segment(q, seg, g)[seg]
        phi = phi + self.diag * q + self.bg_a * qt + _segment(self.bg_b * q, seg, g)[seg]
        dip = _segment(q[:, None] * self.slab_z, seg, g)[seg]    # (N, 3) M_a of the structure
        mom = _segment(q[:, None] * self.slab_zz, seg, g)[seg]   # (N, 3)
        slab = 2.0 * dip * self.slab_z - mom - qt[:, None] * (self.slab_zz + self.slab_h2)
        phi = phi + jnp.sum(self.slab_c * slab, axis=-1)
        return jnp.where(self.mask, phi, 0.0)

    def diagonal(self):
        """(N,) diagonal of M, eV/e² (self terms, periodic self-images, reciprocal, background and
        slab parts; the Jacobi preconditioner of QEq)."""
        n = self.mask.shape[0]
        self_image = jnp.where(self.pair_i == self.pair_j, 2.0 * self.pair_kernel, 0.0)
        d = self.diag + _segment(self_image, self.pair_i, n)
        d = d + self.k_weight @ (self.cos * self.cos + self.sin * self.sin)
        sig2 = self.slab_zz - self.slab_z * self.slab_z
        d = d + self.bg_a + self.bg_b - jnp.sum(self.slab_c * (2.0 * sig2 + self.slab_h2), axis=-1)
        return jnp.where(self.mask, d, 0.0)

    def energies(self, q):
        """(G,) energy ½ qᵀ M q of each structure, eV."""
        q = jnp.where(self.mask, q, 0.0)
        return _segment(0.5 * q * self.matvec(q), self.node_graph, self.n_graph)


jax.tree_util.register_dataclass(FlatOperator)


def _pair_terms(positions, cell, sig2, node_graph, mask, data):
    """Kernel (P,) (k_e = 1) of every pair, zero on padding and beyond r_cut."""
    dt = positions.dtype
    i, j = data.pair_i, data.pair_j
    gi = node_graph[i]
    d = positions[j] - positions[i] + jnp.einsum("pa,pab->pb", data.pair_shift.astype(dt), cell[gi])
    d2 = jnp.sum(d * d, axis=-1)
    rc = data.r_cut.astype(dt)[gi]
    periodic = data.periodic[gi]
    ok = data.pair_mask & mask[i] & mask[j] & (~periodic | (d2 <= rc * rc))
    d2 = jnp.where(ok, d2, 1.0)
    eta = data.eta.astype(dt)[gi]
    kern = screened_over_r(d2, 2.0 * (sig2[i] + sig2[j]), 2.0 * eta * eta, periodic)
    return jnp.where(ok, kern, 0.0)


def _kvector_terms(positions, cell, node_graph, mask, data):
    """cos, sin (K, N) of k·r (zero across structures) and the weights W_k (K,) (k_e = 1).

    ``cell`` must be non-singular in every slot (open structures get the identity)."""
    dt = positions.dtype
    g = data.k_graph
    inv = jnp.linalg.inv(cell)
    volume = jnp.abs(jnp.linalg.det(cell))
    kvec = 2.0 * math.pi * jnp.einsum("ka,kba->kb", data.miller.astype(dt), inv[g])
    k2 = jnp.sum(kvec * kvec, axis=-1)
    ok = data.k_mask & data.periodic[g] & (k2 > 0)
    k2 = jnp.where(ok, k2, 1.0)
    eta = data.eta.astype(dt)[g]
    vol = jnp.where(ok, volume[g], 1.0)
    w = jnp.where(ok, 4.0 * math.pi / vol * jnp.exp(-0.5 * eta * eta * k2) / k2, 0.0)
    theta = kvec @ positions.T
    same = (g[:, None] == node_graph[None, :]) & mask[None, :] & ok[:, None]
    return jnp.where(same, jnp.cos(theta), 0.0), jnp.where(same, jnp.sin(theta), 0.0), w


def flat_operator(positions, cell, sigmas, node_graph, node_mask, data: FlatData,
                  dense_real: bool = False) -> FlatOperator:
    """Precompute M's geometry for a flat batch (differentiable in positions, cell, sigmas).

    ``dense_real`` (static): also scatter the pair terms into an (N, N) matrix, so that each
    mat-vec reads N² numbers instead of gathering and scattering over P pairs (faster when P is
    much larger than N², e.g. Ewald real space, and the O(N²) memory is affordable).

    Args:
        positions: (N, 3) Å. cell: (G, 3, 3) Å (ignored for open structures).
        sigmas: (N,) Gaussian widths, Å (0 = point charge).
        node_graph: (N,) int32 structure of each atom. node_mask: (N,) bool, real atoms.
        data: the batch's :class:`FlatData`.
    """
    dt = positions.dtype
    n_graph = cell.shape[0]
    mask = jnp.asarray(node_mask, bool)
    sig2 = jnp.where(mask, jnp.asarray(sigmas, dt) ** 2, 0.0)
    periodic = data.periodic[node_graph] & mask
    safe_cell = jnp.where(data.periodic[:, None, None], cell, jnp.eye(3, dtype=dt))
    volume = jnp.abs(jnp.linalg.det(safe_cell))
    eta = data.eta.astype(dt)[node_graph]
    kern = _pair_terms(positions, safe_cell, sig2, node_graph, mask, data)
    cos, sin, w = _kvector_terms(positions, safe_cell, node_graph, mask, data)
    zero = jnp.zeros_like(sig2)
    diag = erf_over_r(zero, 4.0 * sig2) - jnp.where(periodic, erf_over_r(zero, 2.0 * eta * eta), 0.0)
    c = jnp.where(periodic, 2.0 * math.pi / volume[node_graph], 0.0)
    nhat, h = _slab_geometry(safe_cell)
    z = jnp.einsum("na,nba->nb", positions, nhat[node_graph])
    slab_c = KE * c[:, None] * data.slab.astype(dt)[node_graph]
    return FlatOperator(
        pair_i=data.pair_i, pair_j=data.pair_j, pair_kernel=KE * kern, cos=cos, sin=sin,
        k_weight=2.0 * KE * w, diag=KE * jnp.where(mask, diag, 0.0),
        self_energy=KE * jnp.where(mask, erf_over_r(zero, 4.0 * sig2), 0.0),
        bg_a=KE * c * (sig2 - eta * eta), bg_b=KE * c * sig2,
        slab_z=z, slab_zz=z * z + sig2[:, None], slab_c=slab_c, slab_h2=(h * h / 6.0)[node_graph],
        node_graph=node_graph, mask=mask, n_graph=n_graph,
        real_dense=_pairs_dense(data.pair_i, data.pair_j, KE * kern, positions.shape[0]) if dense_real else None)


def _pairs_dense(i, j, kern, n):
    """(N, N) symmetric matrix of the half pair list's kernel (each pair in both orders)."""
    return jnp.zeros((n, n), kern.dtype).at[i, j].add(kern).at[j, i].add(kern)


def flat_energy(positions, cell, sigmas, q, node_graph, node_mask, data: FlatData):
    """(G,) Coulomb energy of every structure, eV (open, or Ewald with background and slab term)."""
    return flat_operator(positions, cell, sigmas, node_graph, node_mask, data).energies(q)


def flat_matrix(op: FlatOperator):
    """Dense (N, N) M of a flat batch, eV/e² (block-diagonal: zero across structures)."""
    n = op.mask.shape[0]
    m = op.real_dense if op.real_dense is not None else _pairs_dense(op.pair_i, op.pair_j, op.pair_kernel, n)
    m = m + (op.cos.T * op.k_weight) @ op.cos + (op.sin.T * op.k_weight) @ op.sin
    same = (op.node_graph[:, None] == op.node_graph[None, :]) & op.mask[:, None] & op.mask[None, :]
    m = m + jnp.diag(op.diag)
    m = m + jnp.where(same, op.bg_a[:, None] + op.bg_b[None, :], 0.0)
    dz = op.slab_z[:, None, :] - op.slab_z[None, :, :]
    sig2 = op.slab_zz - op.slab_z * op.slab_z
    slab = dz * dz + sig2[:, None, :] + sig2[None, :, :] + op.slab_h2[:, None, :]
    m = m - jnp.where(same, jnp.sum(op.slab_c[:, None, :] * slab, axis=-1), 0.0)
    return jnp.where(same, m, 0.0)
