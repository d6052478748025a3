"""Jit-compiled Ewald sum of Gaussian charges in a 3-D periodic triclinic cell.

With k_e = 1 inside the brackets and γ_ij = √(σ_i² + σ_j²), the energy is the sum of

1. real space   ½ Σ_{i,j} Σ'_n q_i q_j [erfc(r/√2η) − erfc(r/√2γ_ij)]/r   (r = |r_j − r_i + n|;
   the prime drops i = j at n = 0, self-images n ≠ 0 are kept),
2. reciprocal   (2π/V) Σ_{k≠0} exp(−η²k²/2) |S(k)|²/k²,  S(k) = Σ_i q_i exp(i k·r_i),
3. Ewald self   −Σ_i q_i²/(√(2π) η),
4. Gaussian self  Σ_i q_i²/(2√π σ_i)  (dropped where σ_i = 0),
5. neutralising background for net charge Q: −(π/V)[η²Q² − 2Q Σ_i q_i σ_i²],

times k_e (tin-foil boundary conditions; the total does not depend on η). Optionally the
slab dipole correction of :mod:`~eqlr_jax.electrostatics.surface` is added.

As a quadratic form E = ½ qᵀ M q with M symmetric: parts 1, 2 are pair terms, 3 and 4 are on
the diagonal, 5 is the pair term (2π/V)(γ_ij² − η²) for all i, j (γ_ii² = 2σ_i²).

Functions (all pure, jit-able, vmap-able, differentiable in positions, cell, sigmas and q):

* :func:`ewald_energy` – E (eV),
* :func:`ewald_potential` – φ = M q (eV/e), the QEq mat-vec; ∂E/∂q = φ,
* :func:`ewald_operator` – precomputes the geometry once; ``op.matvec(q)`` is then cheap,
* :func:`ewald_matrix` – dense M (N, N) (eV/e²) for small systems,
* :func:`ewald_overflow` – True if the static k-vector set or pair list is insufficient.

Shapes: positions (N, 3) Å, cell (3, 3) Å (rows are lattice vectors), sigmas scalar or (N,) Å,
q (N,) e, data :class:`~eqlr_jax.electrostatics.ewald_setup.EwaldData` with P pairs and K
k-vectors; atom_mask (N,) bool or None (masked atoms are padding and carry no charge).
The reciprocal sums hold a (K, N) phase array; above :data:`RECIP_CHUNK_ELEMENTS` entries they
run in k-chunks under ``jax.checkpoint`` so that memory (also of gradients) is O(chunk · N).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .constants import KE
from .coulomb import prepare_atoms
from .kernels import erf_over_r, erfc_diff_over_r
from .surface import slab_energy_terms, slab_matrix_terms, slab_potential_terms

#: Above this many (k-vector × atom) entries the reciprocal sums go in chunks.
RECIP_CHUNK_ELEMENTS = 1 << 22


def _pair_kernel(positions, cell, sig2, mask, data):
    """Real-space kernel per pair (P,), 1/Å (k_e = 1), zero for padding / beyond r_cut."""
    p = data.pairs
    dt = positions.dtype
    d = positions[p.j] - positions[p.i] + p.shifts.astype(dt) @ cell
    d2 = jnp.sum(d * d, axis=-1)
    rc = jnp.asarray(data.r_cut, dt)
    ok = p.valid & (d2 <= rc * rc) & mask[p.i] & mask[p.j]
    d2 = jnp.where(ok, d2, rc * rc)
    eta = jnp.asarray(data.eta, dt)
    kern = erfc_diff_over_r(d2, 2.0 * (sig2[p.i] + sig2[p.j]), 2.0 * eta * eta)
    return jnp.where(ok, kern, 0.0)


def _kvectors(cell, data, dt):
    """k-vectors (K, 3) in 1/Å and weights W_k = (4π/V) e^{−η²k²/2}/k² (0 when masked)."""
    volume = jnp.abs(jnp.linalg.det(cell))
    kvec = 2.0 * math.pi * (data.miller.astype(dt) @ jnp.linalg.inv(cell).T)
    k2 = jnp.sum(kvec * kvec, axis=-1)
    kc = jnp.asarray(data.k_cut, dt)
    ok = data.k_valid & (k2 <= kc * kc) & (k2 > 0)
    k2s = jnp.where(ok, k2, 1.0)
    eta = jnp.asarray(data.eta, dt)
    w = jnp.where(ok, 4.0 * math.pi / volume * jnp.exp(-0.5 * eta * eta * k2s) / k2s, 0.0)
    return kvec, w, volume


def _chunks(kvec, w, n_atoms):
    """Split (K, 3), (K,) into (C, chunk, 3), (C, chunk) with zero-weight padding."""
    k = kvec.shape[0]
    chunk = max(1, RECIP_CHUNK_ELEMENTS // max(n_atoms, 1))
    nc = -(-k // chunk)
    pad = nc * chunk - k
    kvec = jnp.pad(kvec, ((0, pad), (0, 0))).reshape(nc, chunk, 3)
    return kvec, jnp.pad(w, (0, pad)).reshape(nc, chunk)


def _recip_energy(kvec, w, positions, q):
    """Σ_k W_k |S(k)|² (k_e = 1) over a half space of k."""
    def part(kv, wk):
        theta = kv @ positions.T
        c, s = jnp.cos(theta) @ q, jnp.sin(theta) @ q
        return jnp.sum(wk * (c * c + s * s))

    n = positions.shape[0]
    if kvec.shape[0] * n <= RECIP_CHUNK_ELEMENTS:
        return part(kvec, w)
    kc, wc = _chunks(kvec, w, n)
    return jnp.sum(jax.lax.map(jax.checkpoint(lambda t: part(*t)), (kc, wc)))


def _recip_potential(kvec, w, positions, q):
    """φ_i = 2 Σ_k W_k Re[conj(S(k)) e^{ik·r_i}] (k_e = 1), shape (N,)."""
    def part(kv, wk):
        theta = kv @ positions.T
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        return 2.0 * ((wk * (cos @ q)) @ cos + (wk * (sin @ q)) @ sin)

    n = positions.shape[0]
    if kvec.shape[0] * n <= RECIP_CHUNK_ELEMENTS:
        return part(kvec, w)
    kc, wc = _chunks(kvec, w, n)
    step = jax.checkpoint(lambda acc, t: (acc + part(*t), None))
    return jax.lax.scan(step, jnp.zeros(n, positions.dtype), (kc, wc))[0]


class _Terms(NamedTuple):
    """Everything the Ewald functions share: atoms, cell, η and the q-independent kernels."""

    positions: jax.Array  # (N, 3)
    cell: jax.Array       # (3, 3)
    sig2: jax.Array       # (N,) σ²
    q: jax.Array          # (N,) charges zeroed on masked atoms, or None
    mask: jax.Array       # (N,) bool
    eta: jax.Array        # ()
    kern: jax.Array       # (P,) real-space pair kernel (k_e = 1)
    kvec: jax.Array       # (K, 3) k-vectors
    w: jax.Array          # (K,) reciprocal weights (k_e = 1)
    volume: jax.Array     # ()


def _terms(positions, cell, sigmas, q, data, atom_mask) -> _Terms:
    positions, sig2, q, mask = prepare_atoms(positions, sigmas, q, atom_mask)
    dt = positions.dtype
    cell = jnp.asarray(cell, dt)
    kern = _pair_kernel(positions, cell, sig2, mask, data)
    kvec, w, volume = _kvectors(cell, data, dt)
    return _Terms(positions, cell, sig2, q, mask, jnp.asarray(data.eta, dt), kern, kvec, w, volume)


def _self_diag(sig2, eta):
    """Diagonal self terms 1/(√π σ_i) − 2/(√(2π) η) (k_e = 1), shape (N,)."""
    zero = jnp.zeros_like(sig2)
    return erf_over_r(zero, 4.0 * sig2) - erf_over_r(zero, jnp.broadcast_to(2.0 * eta * eta, sig2.shape))


def ewald_energy(positions, cell, sigmas, q, data, atom_mask=None):
    """Ewald energy of Gaussian charges (scalar, eV), all five parts (+ slab term if on)."""
    t = _terms(positions, cell, sigmas, q, data, atom_mask)
    q, sig2, eta = t.q, t.sig2, t.eta
    e_real = jnp.sum(t.kern * q[data.pairs.i] * q[data.pairs.j])
    e_rec = _recip_energy(t.kvec, t.w, t.positions, q)
    e_self = 0.5 * jnp.sum(_self_diag(sig2, eta) * q * q)
    qt = jnp.sum(q)
    e_bg = -(math.pi / t.volume) * (eta * eta * qt * qt - 2.0 * qt * jnp.sum(q * sig2))
    e_slab = slab_energy_terms(t.positions, t.cell, sig2, data.slab, q)
    return KE * (e_real + e_rec + e_self + e_bg + e_slab)


class EwaldOperator(NamedTuple):
    """Geometry-dependent parts of M, precomputed by :func:`ewald_operator` (a pytree).

    ``matvec(q)`` costs two gathers/scatters over P pairs and four (K, N) mat-vecs; memory is
    dominated by ``cos``/``sin`` (K, N). Everything is already multiplied by k_e.
    """

    pair_i: jax.Array      # (P,)
    pair_j: jax.Array      # (P,)
    pair_kernel: jax.Array  # (P,) eV/e², 0 for padding
    cos: jax.Array         # (K, N)
    sin: jax.Array         # (K, N)
    k_weight: jax.Array    # (K,) eV/e² (2·k_e·W_k)
    diag: jax.Array        # (N,) eV/e², self terms
    bg_a: jax.Array        # (N,) k_e(2π/V)(σ_i² − η²)
    bg_b: jax.Array        # (N,) k_e(2π/V)σ_j²
    slab: tuple            # arguments of surface.slab_potential_terms
    mask: jax.Array        # (N,) bool

    def matvec(self, q):
        """φ = M q (N,), eV/e, for charges q (N,) e."""
        q = jnp.where(self.mask, q, 0.0)
        n = q.shape[0]
        qi, qj = q[self.pair_i], q[self.pair_j]
        phi = jax.ops.segment_sum(self.pair_kernel * qj, self.pair_i, n)
        phi = phi + jax.ops.segment_sum(self.pair_kernel * qi, self.pair_j, n)
        phi = phi + (self.k_weight * (self.cos @ q)) @ self.cos + (self.k_weight * (self.sin @ q)) @ self.sin
        phi = phi + self.diag * q + self.bg_a * jnp.sum(q) + jnp.sum(self.bg_b * q)
        phi = phi + KE * slab_potential_terms(*self.slab, q)
        return jnp.where(self.mask, phi, 0.0)


def ewald_operator(positions, cell, sigmas, data, atom_mask=None) -> EwaldOperator:
    """Precompute M's geometry for repeated mat-vecs at fixed positions and cell (e.g. QEq CG)."""
    t = _terms(positions, cell, sigmas, None, data, atom_mask)
    theta = t.kvec @ t.positions.T
    c = 2.0 * math.pi / t.volume
    return EwaldOperator(
        pair_i=data.pairs.i, pair_j=data.pairs.j, pair_kernel=KE * t.kern,
        cos=jnp.cos(theta), sin=jnp.sin(theta), k_weight=2.0 * KE * t.w,
        diag=KE * _self_diag(t.sig2, t.eta), bg_a=KE * c * (t.sig2 - t.eta * t.eta), bg_b=KE * c * t.sig2,
        slab=(t.positions, t.cell, t.sig2, data.slab), mask=t.mask)


def ewald_potential(positions, cell, sigmas, q, data, atom_mask=None):
    """Potential φ = M q at every atom (N,), eV/e; linear in q and equal to ∂E/∂q.

    Recomputes the geometry on each call without storing the (K, N) phases beyond one
    k-chunk; for many products at fixed geometry use :func:`ewald_operator` instead.
    """
    t = _terms(positions, cell, sigmas, q, data, atom_mask)
    q, sig2, eta = t.q, t.sig2, t.eta
    n = q.shape[0]
    p = data.pairs
    phi = jax.ops.segment_sum(t.kern * q[p.j], p.i, n) + jax.ops.segment_sum(t.kern * q[p.i], p.j, n)
    phi = phi + _recip_potential(t.kvec, t.w, t.positions, q)
    phi = phi + _self_diag(sig2, eta) * q
    c = 2.0 * math.pi / t.volume
    phi = phi + c * ((sig2 - eta * eta) * jnp.sum(q) + jnp.sum(sig2 * q))
    phi = phi + slab_potential_terms(t.positions, t.cell, sig2, data.slab, q)
    return KE * jnp.where(t.mask, phi, 0.0)


def ewald_matrix(positions, cell, sigmas, data, atom_mask=None):
    """Dense Ewald matrix M (N, N), eV/e², with ½ qᵀ M q = :func:`ewald_energy` (any net charge).

    Rows and columns of masked atoms are zero. Memory O(N² + K·N).
    """
    t = _terms(positions, cell, sigmas, None, data, atom_mask)
    sig2, eta, w = t.sig2, t.eta, t.w
    n = sig2.shape[0]
    p = data.pairs
    m = jnp.zeros((n, n), sig2.dtype).at[p.i, p.j].add(t.kern).at[p.j, p.i].add(t.kern)
    theta = t.kvec @ t.positions.T
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    m = m + 2.0 * ((cos.T * w) @ cos + (sin.T * w) @ sin)
    m = m + jnp.diag(_self_diag(sig2, eta))
    m = m + (2.0 * math.pi / t.volume) * (sig2[:, None] + sig2[None, :] - eta * eta)
    m = m + slab_matrix_terms(t.positions, t.cell, sig2, data.slab)
    both = t.mask[:, None] & t.mask[None, :]
    return KE * jnp.where(both, m, 0.0)


def ewald_overflow(cell, data):
    """True (jit-able bool) if the static shapes no longer suffice for this cell / pair list.

    Checks that the Miller set still covers k_cut (k_cut·‖inv(cell_ref)·cell‖₂ ≤ k_store) and
    that the pair list was not truncated (``n_found > P``).
    """
    cell = jax.lax.stop_gradient(jnp.asarray(cell))
    dt = cell.dtype
    a = jnp.asarray(data.ref_inv_cell, dt) @ cell
    stretch = jnp.sqrt(jnp.max(jnp.linalg.eigvalsh(a.T @ a)))
    tol = 1.0 + 100.0 * jnp.finfo(dt).eps
    k_bad = jnp.asarray(data.k_cut, dt) * stretch > jnp.asarray(data.k_store, dt) * tol
    return k_bad | (data.pairs.n_found > data.pairs.valid.shape[-1])
