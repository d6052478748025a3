"""Test oracle: the NequIP network written with e3nn-jax's own layers in e3nn's layout
(``e3nn.flax.Linear``, ``e3nn.gate``, ``e3nn.tensor_product`` + ``segment_sum``), as eqlr_jax
had it before its component-major layers. Same parameter tree as ``eqlr_jax.nn.NequIP``; the
edge features, node attributes and species scale/shift are the network's own helpers (they are
not what the comparison tests)."""
import math

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from eqlr_jax.nn.config import NequIPConfig
from eqlr_jax.nn.edge_blocks import RadialMLP, radial_mlp
from eqlr_jax.nn.nequip import _gate_input, edge_features, hidden_irreps, node_attributes, scale_shift
from eqlr_jax.nn.tensor_product import num_weights


class Interaction(nn.Module):
    """One NequIP interaction block. Output irreps: ``target`` (those reachable from the input)."""

    target: e3nn.Irreps
    n_species: int
    avg_num_neighbors: float
    radial_mlp: tuple[int, ...]

    @nn.compact
    def __call__(self, h, sh, radial, species, senders, receivers, node_inputs=None):
        n_nodes = h.shape[0]
        reachable = {ir for _, ir in e3nn.tensor_product(h.irreps, sh.irreps)}
        target = e3nn.Irreps([(m, ir) for m, ir in self.target if ir in reachable])
        gate_in = _gate_input(target)

        # self-connection: a tensor product with the node attributes (one-hot species, plus
        # any extra per-atom scalars such as a charge encoding)
        sc = e3nn.flax.Linear(gate_in, num_indexed_weights=self.n_species, force_irreps_out=True,
                              name="self_connection")(species, h)
        if node_inputs is not None:
            sc = sc + e3nn.flax.Linear(gate_in, force_irreps_out=True, name="self_connection_inputs")(
                node_inputs, h)

        x = e3nn.flax.Linear(h.irreps, name="linear_1")(h)
        n_weights = num_weights(x.irreps, sh.irreps, gate_in)
        kernels = RadialMLP(self.radial_mlp + (n_weights,), name="radial_mlp")(radial.shape[-1], radial.dtype)
        # = segment_sum(e3nn.tensor_product(x[senders], sh, filter_ir_out=gate_in) * mlp(radial), receivers)
        msg = e3nn.tensor_product(x[senders], sh, filter_ir_out=gate_in)
        msg = msg * radial_mlp(kernels, radial)  # weights in the order of msg's (sorted) irreps
        agg = e3nn.IrrepsArray(msg.irreps, jax.ops.segment_sum(msg.array, receivers, n_nodes)).regroup()
        agg = agg / math.sqrt(self.avg_num_neighbors)
        y = e3nn.flax.Linear(gate_in, force_irreps_out=True, name="linear_2")(agg)
        return e3nn.gate(y + sc, even_act=jax.nn.silu, odd_act=jnp.tanh, even_gate_act=jax.nn.silu,
                         odd_gate_act=jnp.tanh)


class ReferenceNequIP(nn.Module):
    """Per-atom scalar outputs from edge vectors.

    Call signature:
        edge_vectors: (E, 3) receiver -> sender vectors, Å.
        species: (N,) int species indices.
        senders, receivers: (E,) int, edges sorted by receiver.
        edge_mask: (E,) bool; masked edges contribute exactly nothing (values and gradients).
        node_inputs: optional (N, n_node_inputs) extra per-atom scalars.

    Returns:
        (outputs, features): outputs (N, n_outputs), where column 0 is scaled and shifted per
        species (the per-atom energy in eV for an energy model); features: the last hidden
        IrrepsArray (N, num_features x 0e).
    """

    config: NequIPConfig

    @nn.compact
    def __call__(self, edge_vectors, species, senders, receivers, edge_mask, node_inputs=None):
        cfg = self.config
        n_species = len(cfg.species)
        sh, sh_irreps, radial = edge_features(cfg, edge_vectors, edge_mask)
        sh = e3nn.IrrepsArray(sh_irreps, sh)
        attrs, extra = node_attributes(cfg, species, node_inputs, edge_vectors.dtype)
        h = e3nn.flax.Linear(f"{cfg.num_features}x0e", name="embedding")(
            e3nn.IrrepsArray(f"{attrs.shape[-1]}x0e", attrs))

        hidden = hidden_irreps(cfg)
        radial_mlp = (cfg.radial_mlp_width,) * cfg.radial_mlp_depth
        for layer in range(cfg.num_layers):
            target = hidden if layer < cfg.num_layers - 1 else e3nn.Irreps(f"{cfg.num_features}x0e")
            h = Interaction(target, n_species, cfg.avg_num_neighbors, radial_mlp, name=f"layer_{layer}")(
                h, sh, radial, species, senders, receivers, extra)

        out = e3nn.flax.Linear(f"{max(cfg.num_features // 2, 1)}x0e", name="readout_hidden")(h)
        out = e3nn.flax.Linear(f"{cfg.n_outputs}x0e", name="readout")(out).array
        out = scale_shift(self, cfg, out, species)
        return out, h
