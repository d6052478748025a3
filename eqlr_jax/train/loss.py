"""Training loss: weighted MSE or Huber on per-atom energy, forces, stress, charges and dipole.

Each term is a masked mean over the references present in the batch (padding and missing
references masked), in the natural units: per-atom energy eV/atom, force components eV/Å,
stress components eV/Å³, charges e, dipole components e·Å.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax

from .batches import Targets

__all__ = ["LossWeights", "loss_terms", "total_loss", "TERMS"]

TERMS = ("energy", "forces", "stress", "charges", "dipole")


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms, and the penalty: ``"mse"`` or ``"huber"`` (optax's, with
    ``huber_delta`` in each term's units)."""

    energy: float = 1.0
    forces: float = 1.0
    stress: float = 0.0
    charges: float = 0.0
    dipole: float = 0.0
    kind: str = "mse"
    huber_delta: float = 0.01

    def __post_init__(self):
        if self.kind not in ("mse", "huber"):
            raise ValueError(f"loss kind must be 'mse' or 'huber', got {self.kind!r}")
        for t in TERMS:
            if getattr(self, t) < 0:
                raise ValueError(f"loss weight {t} must be >= 0, got {getattr(self, t)}")


def _penalty(err, kind, delta):
    return err * err if kind == "mse" else 2.0 * optax.huber_loss(err, delta=delta)


def _masked_mean(values, mask, weight=None):
    """Weighted mean of ``values`` over the entries where ``mask`` (leading axes) is True, and
    the total weight (the count without weights)."""
    wgt = mask.astype(values.dtype) if weight is None else jnp.where(mask, weight, 0.0).astype(values.dtype)
    wgt = jnp.broadcast_to(wgt.reshape(wgt.shape + (1,) * (values.ndim - wgt.ndim)), values.shape)
    n = jnp.sum(wgt)
    return jnp.sum(jnp.where(wgt > 0, values * wgt, 0.0)) / jnp.maximum(n, 1e-12), n


def loss_terms(out: dict, t: Targets, w: LossWeights, weights=None) -> dict:
    """Per-term mean penalties and squared errors (for RMSEs) of one batch, with counts.

    ``weights``: optional ``(per_structure (G,), per_atom (N,))`` weights of each reference
    (bootstrap counts of an ensemble member); None: every reference counts once.

    Returns ``{term: (penalty_mean, squared_error_mean, count)}`` for every term the model
    predicts; charges and dipole only for long-range models.
    """
    gw, nw = (None, None) if weights is None else weights
    res = {}
    err = {"energy": ((out["energy"] - t.energy) / t.n_atoms, t.energy_mask, gw),
           "forces": (out["forces"] - t.forces, t.forces_mask, nw)}
    if "stress" in out:
        err["stress"] = (out["stress"] - t.stress, t.stress_mask, gw)
    if "charges" in out:
        err["charges"] = (out["charges"] - t.charges, t.charges_mask, nw)
        err["dipole"] = (out["dipole"] - t.dipole, t.dipole_mask, gw)
    for k, (e, m, wt) in err.items():
        pen, n = _masked_mean(_penalty(e, w.kind, w.huber_delta), m, wt)
        sq, _ = _masked_mean(e * e, m, wt)
        res[k] = (pen, sq, n)
    return res


def total_loss(terms: dict, w: LossWeights):
    """Σ_term weight · penalty (terms with no references contribute 0)."""
    return sum(getattr(w, k) * v[0] for k, v in terms.items())
