"""The short-range model: one NequIP whose per-atom outputs are energies."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..nn import NequIP, NequIPConfig
from ..nn.nequip import initial_scale_shift
from ..runtime import Runtime

__all__ = ["network_params", "cast_params", "sr_node_energies", "apply_network"]


def cast_params(params, dtype):
    """Floating parameters cast to ``dtype`` (the computation follows the input's dtype)."""
    return jax.tree_util.tree_map(
        lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)


def network_params(config: NequIPConfig, rng: np.random.Generator, dtype, readout: bool = True):
    """Initial parameters of ``NequIP(config)``: the tree of its ``init`` (traced, not compiled),
    every weight N(0, 1) from ``rng`` (e3nn's normalisation is applied in the forward pass), the
    per-species scale and shift at the config's values. Compiling the network's own ``init``
    would build a random-number kernel per weight, which takes seconds."""
    vec = jnp.asarray([[1.0, 0.2, -0.3], [-1.0, -0.2, 0.3]], dtype)
    idx = jnp.asarray([0, 1], jnp.int32)
    species = jnp.zeros(2, jnp.int32)
    inputs = None if config.n_node_inputs == 0 else jnp.zeros((2, config.n_node_inputs), dtype)
    tree = jax.eval_shape(NequIP(config, readout=readout).init, jax.random.PRNGKey(0), vec, species,
                          idx[::-1], idx, jnp.ones(2, bool), inputs)
    fixed = dict(zip(("species_scale", "species_shift"), initial_scale_shift(config)))

    def value(path, leaf):
        name = getattr(path[-1], "key", None)
        v = fixed[name] if name in fixed else rng.standard_normal(leaf.shape)
        return jnp.asarray(v, leaf.dtype)

    return jax.tree_util.tree_map_with_path(value, tree)


def apply_network(config: NequIPConfig, params, graph, vec, runtime: Runtime, node_inputs=None,
                  readout: bool = True):
    """``NequIP(config).apply`` on the graph in the runtime's network dtype
    (:attr:`Runtime.network_dtype`); returns ``(readout (N, K) or None, features (N, F))``, both
    in ``vec``'s dtype."""
    dt = vec.dtype
    nd = runtime.network_dtype_for(dt)
    inputs = None if node_inputs is None else node_inputs.astype(nd)
    out, feats = NequIP(config, runtime, readout=readout).apply(
        cast_params(params, nd), vec.astype(nd), graph.species, graph.senders, graph.receivers, graph.edge_mask,
        inputs)
    return (None if out is None else out.astype(dt)), feats.array.astype(dt)


def sr_node_energies(config: NequIPConfig, params, graph, vec, runtime: Runtime, node_inputs=None):
    """(N,) per-atom energies, eV (0 on padded nodes), from the (E, 3) edge vectors, Å."""
    out, _ = apply_network(config, params, graph, vec, runtime, node_inputs)
    return jnp.where(graph.node_mask, out[:, 0], 0.0)
