"""Safe pair kernels of Gaussian charges, shared by the open-boundary and the Ewald code.

Both kernels take squared quantities (``d2 = r²`` and ``a2 = 2γ²``, Å²) so that no square
root of zero is ever differentiated. They use the double-``where`` pattern: every branch is
fed inputs that are safe for it, so the branches that are not selected cannot put NaN into
gradients.

Conventions (k_e = 1 here; callers multiply by :data:`~eqlr_jax.electrostatics.constants.KE`):

* ``erf_over_r(d2, a2) = erf(r/a)/r``. Its r → 0 limit is ``2/(a√π)``, so with ``a2 = 4σ²``
  (a Gaussian with itself, γ_ii² = 2σ²) it gives the self-energy diagonal ``1/(√π σ)``.
  For ``a2 = 0`` (two point charges) it is ``1/r``; at ``r = 0`` *and* ``a2 = 0`` it is
  defined as **0** (the self-interaction of a point charge is dropped). This also keeps
  padding atoms stacked at one point with σ = 0 numerically inert (finite values and
  gradients); two genuinely distinct point charges at the same place are not detected.
* ``erfc_diff_over_r(d2, g2, e2) = [erfc(r/√e2) − erfc(r/√g2)]/r``: the Ewald real-space
  kernel of two Gaussians of pair width γ (``g2 = 2γ²``) with splitting width η
  (``e2 = 2η² > 0``). Computed in the erfc form, accurate in the tail; a Taylor series is
  used for r ≪ min(γ, η), and at ``r = 0, g2 = 0`` the value is ``−2/(√π √e2)`` (the same
  "point-charge self-interaction dropped" convention).
"""

import jax.numpy as jnp
from jax.scipy.special import erf, erfc

_TWO_OVER_SQRT_PI = 1.1283791670955126
#: Use the Taylor series when r²/a² is below this (truncation error ~ TAU⁴/216).
_TAU = 1e-4


def _taylor_erf_over_r(d2, a2):
    """Series of erf(r/a)/r in u = r²/a² to O(u³); valid for u ≪ 1 and a2 > 0."""
    u = d2 / a2
    return _TWO_OVER_SQRT_PI / jnp.sqrt(a2) * (1.0 - u / 3.0 + u * u / 10.0 - u * u * u / 42.0)


def erf_over_r(d2, a2):
    """erf(r/a)/r for r = √d2, a = √a2, elementwise (broadcasting), finite everywhere.

    Args:
        d2: squared distance r², Å², any shape.
        a2: squared erf width a² = 2γ² ≥ 0, Å², broadcastable with ``d2``.

    Returns:
        Array in 1/Å. ``a2 == 0`` gives the point-charge ``1/r``; ``(0, 0)`` gives 0.
    """
    d2, a2 = jnp.broadcast_arrays(d2, a2)
    a_pos = a2 > 0
    a2s = jnp.where(a_pos, a2, 1.0)
    small = a_pos & (d2 < _TAU * a2s)
    taylor = _taylor_erf_over_r(jnp.where(small, d2, 0.0), a2s)
    direct_ok = (~small) & (d2 > 0)
    r = jnp.sqrt(jnp.where(direct_ok, d2, 1.0))
    direct = jnp.where(a_pos, erf(r / jnp.sqrt(a2s)), 1.0) / r
    return jnp.where(small, taylor, jnp.where(direct_ok, direct, 0.0))


def erfc_diff_over_r(d2, g2, e2):
    """[erfc(r/√e2) − erfc(r/√g2)]/r, the screened Ewald real-space kernel (1/Å).

    Args:
        d2: squared distance r², Å².
        g2: 2γ² ≥ 0 for the pair width γ (0 for two point charges), Å².
        e2: 2η² > 0 for the Ewald splitting width η, Å².

    For ``g2 == 0`` the second erfc is 0 (point charges). All inputs broadcast.
    """
    d2, g2, e2 = jnp.broadcast_arrays(d2, g2, e2)
    g_pos = g2 > 0
    g2s = jnp.where(g_pos, g2, 1.0)
    small = jnp.where(g_pos, d2 < _TAU * jnp.minimum(g2s, e2), d2 == 0)
    ds = jnp.where(small, d2, 0.0)
    taylor = jnp.where(g_pos, _taylor_erf_over_r(ds, g2s), 0.0) - _taylor_erf_over_r(ds, e2)
    r = jnp.sqrt(jnp.where(small, 1.0, d2))
    direct = (erfc(r / jnp.sqrt(e2)) - jnp.where(g_pos, erfc(r / jnp.sqrt(g2s)), 0.0)) / r
    return jnp.where(small, taylor, direct)


def screened_over_r(d2, g2, e2, screened):
    """Pair kernel of two Gaussians, open or Ewald-screened, in one expression (1/Å).

    ``screened`` (bool, broadcastable): :func:`erfc_diff_over_r` ``(d2, g2, e2)`` where True
    (the Ewald real-space kernel), :func:`erf_over_r` ``(d2, g2)`` where False (open
    boundaries; ``e2`` is then unused but must be positive). Both are
    ``[A − erfc(r/√g2)]/r`` with ``A = erfc(r/√e2)`` or 1, so a batch that mixes open and
    periodic structures evaluates each kind of erfc once per pair.
    """
    d2, g2, e2, screened = jnp.broadcast_arrays(d2, g2, e2, screened)
    g_pos = g2 > 0
    g2s = jnp.where(g_pos, g2, 1.0)
    small_g = jnp.where(g_pos, d2 < _TAU * g2s, d2 == 0)
    small = jnp.where(screened, jnp.where(g_pos, d2 < _TAU * jnp.minimum(g2s, e2), d2 == 0), small_g)
    ds = jnp.where(small, d2, 0.0)
    taylor = (jnp.where(g_pos, _taylor_erf_over_r(ds, g2s), 0.0)
              - jnp.where(screened, _taylor_erf_over_r(ds, e2), 0.0))
    r = jnp.sqrt(jnp.where(small, 1.0, d2))
    a = jnp.where(screened, erfc(r / jnp.sqrt(e2)), 1.0)
    direct = (a - jnp.where(g_pos, erfc(r / jnp.sqrt(g2s)), 0.0)) / r
    return jnp.where(small, taylor, direct)
