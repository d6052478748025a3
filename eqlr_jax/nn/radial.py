"""Radial basis of NequIP: Bessel functions times a polynomial cutoff envelope."""
from __future__ import annotations

import jax.numpy as jnp


def bessel_basis(r, n_basis: int, r_max: float):
    """sqrt(2/r_max) sin(n pi r / r_max) / r for n = 1..n_basis.

    Args:
        r: (E,) distances, Å, strictly positive.
    Returns:
        (E, n_basis) in 1/Å^{3/2}-like units (NequIP's normalisation).
    """
    n = jnp.arange(1, n_basis + 1, dtype=r.dtype)
    return jnp.sqrt(2.0 / r_max) * jnp.sin(n * jnp.pi * r[:, None] / r_max) / r[:, None]


def polynomial_envelope(r, r_max: float, p: int = 6):
    """NequIP's smooth cutoff: 1 - (p+1)(p+2)/2 u^p + p(p+2) u^(p+1) - p(p+1)/2 u^(p+2), u = r/r_max.

    Equals 1 at r=0, goes to 0 with p-1 vanishing derivatives at r_max, and is 0 beyond.
    """
    u = r / r_max
    f = (1.0 - 0.5 * (p + 1) * (p + 2) * u**p + p * (p + 2) * u ** (p + 1) - 0.5 * p * (p + 1) * u ** (p + 2))
    return jnp.where(u < 1.0, f, 0.0)
