"""The small per-atom pieces of the long-range model: χ head, QEq parameters, charge encoding.

All are pure functions of a parameter dict; weights are drawn N(0, 1) and normalised in the
forward pass (by 1/√fan-in), like the network's e3nn layers.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .config import LRConfig
from .elements import covalent_radii, pauling_electronegativities

__all__ = ["chi_reference", "chi_head", "hardness", "sigmas", "sigma_bound", "charge_encoding",
           "head_param_shapes", "head_param_values"]


def chi_reference(config: LRConfig) -> tuple[float, ...]:
    """Per-species χ reference, eV/e: ``config.chi_reference``, else Pauling (bounded head) or 0."""
    if config.chi_reference is not None:
        return config.chi_reference
    if config.chi_head == "bounded":
        return pauling_electronegativities(config.species)
    return (0.0,) * len(config.species)


def _sigma0(config: LRConfig) -> np.ndarray:
    return np.asarray(config.sigmas if config.sigmas is not None else covalent_radii(config.species))


def sigma_bound(config: LRConfig) -> tuple[float, ...]:
    """Largest σ (Å) each species can reach: σ0, or 1.5 σ0 when σ is learned."""
    return tuple(float(x) for x in _sigma0(config) * (1.5 if config.learn_sigma else 1.0))


def head_param_shapes(config: LRConfig) -> dict:
    """Shapes of the χ-head and QEq parameters (``params["chi"]``, ``params["qeq"]``)."""
    f, h, s = config.num_features, config.chi_hidden, len(config.species)
    qeq = {"hardness": (s,)}
    if config.learn_sigma:
        qeq["sigma"] = (s,)
    return {"chi": {"w1": (f, h), "b1": (h,), "w2": (h,), "offset": (s,)}, "qeq": qeq}


def head_param_values(config: LRConfig, rng: np.random.Generator, dtype) -> dict:
    """Initial values: weights N(0, 1), biases 0, offset = the χ reference (MLP head), hardness
    p = softplus⁻¹(J0), σ parameter 0 (σ = σ0)."""
    shapes = head_param_shapes(config)
    chi = {k: rng.standard_normal(v) for k, v in shapes["chi"].items()}
    chi["b1"] = np.zeros(shapes["chi"]["b1"])
    chi["offset"] = np.asarray(chi_reference(config)) if config.chi_head == "mlp" else np.zeros(len(config.species))
    j0 = np.asarray(config.hardness_init)
    qeq = {"hardness": j0 + np.log(-np.expm1(-j0))}  # softplus⁻¹, stable for large J0
    if config.learn_sigma:
        qeq["sigma"] = np.zeros(len(config.species))
    cast = lambda t: jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), t)  # noqa: E731
    return {"chi": cast(chi), "qeq": cast(qeq)}


def chi_head(config: LRConfig, p: dict, features, species):
    """(N,) electronegativities χ, eV/e, from the (N, F) stage-1 scalar features."""
    f = features.shape[-1]
    h = jax.nn.silu(features @ p["w1"] / math.sqrt(f) + p["b1"])
    x = h @ p["w2"] / math.sqrt(p["w2"].shape[0])
    if config.chi_head == "bounded":
        ref = jnp.asarray(chi_reference(config), features.dtype)[species]
        return ref * (1.0 + config.chi_bound * jnp.tanh(x))
    return x + p["offset"][species]


def hardness(config: LRConfig, p: dict, species):
    """(N,) J = softplus(p_Z) > 0, eV/e²."""
    return jax.nn.softplus(p["hardness"])[species]


def sigmas(config: LRConfig, p: dict, species, dtype):
    """(N,) Gaussian widths σ, Å: fixed σ0, or σ0 (½ + sigmoid(p_Z)) when learned."""
    s0 = jnp.asarray(_sigma0(config), dtype)
    if not config.learn_sigma:
        return s0[species]
    return (s0 * (0.5 + jax.nn.sigmoid(p["sigma"])))[species]


def charge_encoding(config: LRConfig, q):
    """(N, K + 1) stage-2 charge inputs: K Gaussians exp(−((q − c_k)/w)²) over ``charge_range``
    (w = range / K) and q itself."""
    lo, hi = config.charge_range
    k = config.charge_basis
    if k == 0:
        return q[:, None]
    centres = jnp.linspace(lo, hi, k, dtype=q.dtype)
    width = (hi - lo) / k
    return jnp.concatenate([jnp.exp(-(((q[:, None] - centres) / width) ** 2)), q[:, None]], axis=-1)
