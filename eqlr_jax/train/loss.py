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


def _masked_mean(values, mask):
    mask = jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim)), values.shape)
    n = jnp.sum(mask)
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(n, 1), n


def loss_terms(out: dict, t: Targets, w: LossWeights) -> dict:
    """Per-term mean penalties and squared errors (for RMSEs) of one batch, with counts.

    Returns ``{term: (penalty_mean, squared_error_mean, count)}`` for every term the model
    predicts; charges and dipole only for long-range models.
    """
    res = {}
    err = {"energy": ((out["energy"] - t.energy) / t.n_atoms, t.energy_mask),
           "forces": (out["forces"] - t.forces, t.forces_mask)}
    if "stress" in out:
        err["stress"] = (out["stress"] - t.stress, t.stress_mask)
    if "charges" in out:
        err["charges"] = (out["charges"] - t.charges, t.charges_mask)
        err["dipole"] = (out["dipole"] - t.dipole, t.dipole_mask)
    for k, (e, m) in err.items():
        pen, n = _masked_mean(_penalty(e, w.kind, w.huber_delta), m)
        sq, _ = _masked_mean(e * e, m)
        res[k] = (pen, sq, n)
    return res


def total_loss(terms: dict, w: LossWeights):
    """Σ_term weight · penalty (terms with no references contribute 0)."""
    return sum(getattr(w, k) * v[0] for k, v in terms.items())
