"""Optional slab (dipole) correction for 2-D periodic systems computed with 3-D Ewald.

A slab (surface + vacuum) in a 3-D periodic cell interacts with its periodic images along
the surface normal n̂ through its dipole. Yeh & Berkowitz (J. Chem. Phys. 111, 3155, 1999)
remove this by switching from tin-foil to vacuum boundary conditions along n̂ only:

    E_YB = (2π/V) M_z²,    M_z = Σ_i q_i z_i,   z_i = r_i · n̂.

For a cell with net charge Q the dipole depends on the origin; Ballenegger, Arnold & Cerdà
(J. Chem. Phys. 131, 094107, 2009) give the origin-independent form

    E = (2π/V) [ M_z² − Q Σ_i q_i (z_i² + σ_i²) − Q² h²/12 ],

where h = V/|a × b| is the cell height along n̂. The σ_i² is the second moment of a
Gaussian charge (our extension to Gaussian charges; it vanishes for point charges).
In QEq form the correction adds M_ij = −(2π/V)[(z_i − z_j)² + σ_i² + σ_j² + h²/6].

``axis`` (0, 1, 2) picks the cell vector that is *not* in the surface plane; n̂ is the unit
normal to the plane of the other two (so triclinic cells are fine).

Caveats:

* It is a correction to 3-D Ewald (tin-foil) with vacuum along n̂; the vacuum gap should be
  several times the slab thickness (an error of order (thickness/h)² remains; the EW2D /
  ELC methods converge better).
* The positions must keep the slab contiguous along n̂ (do not wrap atoms across the cell
  boundary normal to the slab): the energy depends on the unwrapped z_i.
* The correction is off by default; the NequIP-LR reference code does not apply it.

The ``*_terms`` functions are jit-able, in k_e = 1 units, vectorised over the three axes
with weights ``w`` (3,) (0 = off, 1 = on); the ``slab_correction_*`` functions are in eV.
"""

import math

import jax.numpy as jnp

from .constants import KE


def _geometry(positions, cell):
    """Unit normals (3, 3), heights (3,), coordinates z (N, 3) and volume V."""
    recip = jnp.linalg.inv(cell).T  # rows b_a with a_i · b_j = δ_ij
    inv_h = jnp.linalg.norm(recip, axis=1)
    nhat = recip / inv_h[:, None]
    return nhat, 1.0 / inv_h, positions @ nhat.T, jnp.abs(jnp.linalg.det(cell))


def slab_energy_terms(positions, cell, sig2, w, q):
    """Σ_a w_a (2π/V)[M_a² − Q Σ q(z_a² + σ²) − Q² h_a²/12] (k_e = 1, scalar)."""
    _, h, z, vol = _geometry(positions, cell)
    qt = jnp.sum(q)
    dip = q @ z
    mom2 = q @ (z * z + sig2[:, None])
    return (2.0 * math.pi / vol) * jnp.sum(w * (dip * dip - qt * mom2 - qt * qt * h * h / 12.0))


def slab_potential_terms(positions, cell, sig2, w, q):
    """∂/∂q of :func:`slab_energy_terms`, shape (N,) (k_e = 1)."""
    _, h, z, vol = _geometry(positions, cell)
    qt = jnp.sum(q)
    dip = q @ z
    zz = z * z + sig2[:, None]
    mom2 = q @ zz
    per_axis = 2.0 * dip * z - mom2 - qt * zz - qt * h * h / 6.0
    return (2.0 * math.pi / vol) * (per_axis @ w)


def slab_matrix_terms(positions, cell, sig2, w):
    """Σ_a w_a · (−2π/V)[(z_i − z_j)² + σ_i² + σ_j² + h_a²/6], shape (N, N) (k_e = 1)."""
    _, h, z, vol = _geometry(positions, cell)
    dz = z[:, None, :] - z[None, :, :]
    per_axis = dz * dz + (sig2[:, None] + sig2[None, :])[..., None] + h * h / 6.0
    return -(2.0 * math.pi / vol) * (per_axis @ w)


def _weights(axis, dtype):
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    return jnp.zeros(3, dtype).at[axis].set(1.0)


def slab_correction_energy(positions, cell, charges, sigmas=0.0, axis=2):
    """Slab dipole correction energy (eV) along cell axis ``axis``; add it to the Ewald energy."""
    positions = jnp.asarray(positions)
    sig2 = jnp.broadcast_to(jnp.asarray(sigmas, positions.dtype) ** 2, positions.shape[:1])
    return KE * slab_energy_terms(positions, jnp.asarray(cell, positions.dtype), sig2,
                                  _weights(axis, positions.dtype), jnp.asarray(charges, positions.dtype))


def slab_correction_potential(positions, cell, charges, sigmas=0.0, axis=2):
    """Potential (N,) eV/e of the slab correction (its derivative in the charges)."""
    positions = jnp.asarray(positions)
    sig2 = jnp.broadcast_to(jnp.asarray(sigmas, positions.dtype) ** 2, positions.shape[:1])
    return KE * slab_potential_terms(positions, jnp.asarray(cell, positions.dtype), sig2,
                                     _weights(axis, positions.dtype), jnp.asarray(charges, positions.dtype))
