"""The energy models above the network: short range (one NequIP) and NequIP-LR.

A model is selected by its config: :class:`~eqlr_jax.NequIPConfig` (short range), or
:class:`LRConfig` (long range, or short range with ``long_range=False``: the same code).
"""
from __future__ import annotations

from ..graph import LongRangeSpec
from ..nn import NequIPConfig
from ..runtime import Runtime
from .config import LRConfig
from .heads import sigma_bound
from .lr import lr_params, lr_terms
from .sr import cast_params, network_params, sr_node_energies

__all__ = ["LRConfig", "ModelConfig", "is_long_range", "long_range_spec", "init_params", "sr_node_energies",
           "lr_terms", "short_range_parts", "cast_params"]

ModelConfig = NequIPConfig | LRConfig


def is_long_range(config) -> bool:
    """True for a config whose model has charges and electrostatics."""
    return isinstance(config, LRConfig) and config.long_range


def long_range_spec(config, runtime: Runtime = Runtime()) -> LongRangeSpec | None:
    """What graphs for this model need beyond the short-range edges (None: nothing)."""
    if not is_long_range(config):
        return None
    gamma = tuple(2.0 ** 0.5 * s for s in sigma_bound(config))
    return LongRangeSpec(gamma_max=gamma, accuracy=config.ewald_accuracy, eta_factor=runtime.ewald_eta_factor)


def init_params(config, seed: int, dtype):
    """Initial parameters of the model of ``config``."""
    import numpy as np

    if isinstance(config, LRConfig):
        return lr_params(config, seed, dtype)
    return network_params(config, np.random.default_rng(seed), dtype)


def short_range_parts(config, params):
    """(NequIPConfig, params) of the network of a short-range model (for the SR path)."""
    if isinstance(config, LRConfig):
        return config.stage2(), params["stage2"]
    return config, params
