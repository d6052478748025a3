"""Open-boundary (non-periodic) Coulomb interaction of Gaussian charges. Pure, jit-able JAX.

Atom i carries a Gaussian charge q_i of width σ_i ≥ 0 (σ = 0: point charge). The energy is

    E = k_e [ Σ_{i<j} q_i q_j erf(r_ij/(√2 γ_ij))/r_ij + Σ_i q_i²/(2√π σ_i) ],
    γ_ij = √(σ_i² + σ_j²),

with the self term dropped where σ_i = 0. Equivalently ``E = ½ qᵀ M q`` with
``M_ij = k_e erf(r_ij/(√2γ_ij))/r_ij`` for i ≠ j and ``M_ii = k_e/(√π σ_i)`` (0 for σ_i = 0),
both given by :func:`~eqlr_jax.electrostatics.kernels.erf_over_r`.

All sums run over all N² pairs. Below ``block_elements`` kernel entries the N × N kernel is
built at once; above it the rows are processed in blocks under ``jax.checkpoint``, so memory
(also for gradients) stays O(block · N) while the work stays O(N²).

Shapes: positions (N, 3) Å, sigmas scalar or (N,) Å, q (N,) e, atom_mask (N,) bool or None
(False = padding; such atoms neither feel nor create potential). Energies in eV, potentials
in eV/e, matrices in eV/e². All functions are differentiable in positions, sigmas and q.
"""

import jax
import jax.numpy as jnp

from .constants import KE
from .kernels import erf_over_r

#: Above this many kernel entries (N × N) the open-boundary sums go in row blocks.
BLOCK_ELEMENTS = 1 << 22


def prepare_atoms(positions, sigmas, q=None, atom_mask=None):
    """Shared prologue: (positions, σ² (N,), q (N,) zeroed on masked atoms or None, mask (N,))."""
    positions = jnp.asarray(positions)
    n = positions.shape[0]
    sig2 = jnp.broadcast_to(jnp.asarray(sigmas, positions.dtype) ** 2, (n,))
    mask = jnp.ones(n, bool) if atom_mask is None else jnp.asarray(atom_mask, bool)
    if q is not None:
        q = jnp.where(mask, jnp.asarray(q, positions.dtype), 0.0)
    return positions, sig2, q, mask


def _kernel_rows(pos_rows, sig2_rows, mask_rows, positions, sig2, mask):
    """k_e-free kernel block M[rows, :], shape (B, N); zero where either atom is masked."""
    d = positions[None, :, :] - pos_rows[:, None, :]
    d2 = jnp.sum(d * d, axis=-1)
    both = mask_rows[:, None] & mask[None, :]
    d2 = jnp.where(both, d2, 1.0)
    a2 = 2.0 * (sig2_rows[:, None] + sig2[None, :])
    return jnp.where(both, erf_over_r(d2, a2), 0.0)


def _block_size(n, block_elements):
    return max(1, min(n, block_elements // max(n, 1)))


def _map_rows(fn, positions, sig2, mask, extra, block):
    """Apply ``fn(pos_b, sig2_b, mask_b, extra_b) -> (B,)`` over row blocks; returns (N,)."""
    n = positions.shape[0]
    nb = -(-n // block)
    pad = nb * block - n

    def padded(x, value):
        widths = [(0, pad)] + [(0, 0)] * (x.ndim - 1)
        return jnp.pad(x, widths, constant_values=value).reshape((nb, block) + x.shape[1:])

    xs = (padded(positions, 0.0), padded(sig2, 0.0), padded(mask, False), padded(extra, 0.0))
    out = jax.lax.map(jax.checkpoint(lambda t: fn(*t)), xs)
    return out.reshape(-1)[:n]


def open_matrix(positions, sigmas, atom_mask=None):
    """Dense open-boundary Coulomb matrix M (N, N) in eV/e², with ``E = ½ qᵀ M q``.

    Rows and columns of masked (padding) atoms are zero.
    """
    positions, sig2, _, mask = prepare_atoms(positions, sigmas, None, atom_mask)
    return KE * _kernel_rows(positions, sig2, mask, positions, sig2, mask)


def open_potential(positions, sigmas, q, atom_mask=None, block_elements=BLOCK_ELEMENTS):
    """Electrostatic potential φ = M q at every atom (N,), eV/e. Linear in q.

    Includes the Gaussian self term k_e q_i/(√π σ_i). φ is 0 at masked atoms.
    ``block_elements`` (static int) bounds the size of the kernel block held in memory.
    """
    positions, sig2, q, mask = prepare_atoms(positions, sigmas, q, atom_mask)
    n = positions.shape[0]
    if n * n <= block_elements:
        return KE * (_kernel_rows(positions, sig2, mask, positions, sig2, mask) @ q)

    def rows(pb, sb, mb, _):
        return _kernel_rows(pb, sb, mb, positions, sig2, mask) @ q

    return KE * _map_rows(rows, positions, sig2, mask, q, _block_size(n, block_elements))


def open_energy(positions, sigmas, q, atom_mask=None, block_elements=BLOCK_ELEMENTS):
    """Open-boundary Coulomb energy ``½ qᵀ M q`` (scalar, eV) incl. Gaussian self-energies."""
    positions, sig2, q, mask = prepare_atoms(positions, sigmas, q, atom_mask)
    n = positions.shape[0]
    if n * n <= block_elements:
        m = _kernel_rows(positions, sig2, mask, positions, sig2, mask)
        return 0.5 * KE * (q @ (m @ q))

    def rows(pb, sb, mb, qb):
        return qb * (_kernel_rows(pb, sb, mb, positions, sig2, mask) @ q)

    return 0.5 * KE * jnp.sum(_map_rows(rows, positions, sig2, mask, q, _block_size(n, block_elements)))
