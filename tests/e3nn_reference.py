"""Test oracle: the NequIP network written with e3nn-jax's own layers in e3nn's layout
(``e3nn.flax.Linear``, ``e3nn.gate``, ``e3nn.tensor_product`` + ``segment_sum``), as eqlr_jax
had it before its component-major layers. Same parameter tree as ``eqlr_jax.nn.NequIP``."""
import math

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from eqlr_jax.nn.config import NequIPConfig
from eqlr_jax.nn.edge_blocks import RadialMLP, radial_mlp
from eqlr_jax.nn.nequip import hidden_irreps
from eqlr_jax.nn.radial import bessel_basis, polynomial_envelope
from eqlr_jax.nn.tensor_product import num_weights


def _gate_input(target: e3nn.Irreps) -> e3nn.Irreps:
    """Irreps to feed ``e3nn.gate`` so it outputs ``target``: scalars, one 0e gate per gated irrep,
    then the gated (l > 0) irreps."""
    scalars = e3nn.Irreps([(m, ir) for m, ir in target if ir.l == 0])
    gated = e3nn.Irreps([(m, ir) for m, ir in target if ir.l > 0])
    if gated.num_irreps == 0:
        return scalars
    return scalars + e3nn.Irreps(f"{gated.num_irreps}x0e") + gated


class Interaction(nn.Module):
    """One NequIP interaction block. Output irreps: ``target`` (those reachable from the input)."""

    target: e3nn.Irreps
    n_species: int
    avg_num_neighbors: float
    radial_mlp: tuple[int, ...]
    edge_block: int | str | None = None

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
        dtype = edge_vectors.dtype
        n_species = len(cfg.species)
        if (node_inputs is None) != (cfg.n_node_inputs == 0):
            raise ValueError(f"config.n_node_inputs={cfg.n_node_inputs} but node_inputs "
                             f"{'missing' if node_inputs is None else 'given'}")

        # Padded edges get a safe vector beyond the cutoff: finite norm, zero envelope.
        safe = jnp.asarray([2.0 * cfg.r_max, 0.0, 0.0], dtype)
        vec = jnp.where(edge_mask[:, None], edge_vectors, safe)
        r = jnp.sqrt(jnp.sum(vec**2, axis=-1))
        env = polynomial_envelope(r, cfg.r_max, cfg.polynomial_p) * edge_mask
        radial = bessel_basis(r, cfg.num_bessel, cfg.r_max) * env[:, None]
        sh = e3nn.spherical_harmonics(e3nn.Irreps.spherical_harmonics(cfg.l_max), vec, normalize=True,
                                      normalization="component")
        sh = sh * env[:, None]  # masked / out-of-range edges carry exactly zero

        onehot = jax.nn.one_hot(species, n_species, dtype=dtype)
        attrs = onehot if node_inputs is None else jnp.concatenate([onehot, node_inputs.astype(dtype)], -1)
        h = e3nn.flax.Linear(f"{cfg.num_features}x0e", name="embedding")(
            e3nn.IrrepsArray(f"{attrs.shape[-1]}x0e", attrs))
        extra = None if node_inputs is None else node_inputs.astype(dtype)

        hidden = hidden_irreps(cfg)
        radial_mlp = (cfg.radial_mlp_width,) * cfg.radial_mlp_depth
        for layer in range(cfg.num_layers):
            target = hidden if layer < cfg.num_layers - 1 else e3nn.Irreps(f"{cfg.num_features}x0e")
            h = Interaction(target, n_species, cfg.avg_num_neighbors, radial_mlp, cfg.edge_block,
                            name=f"layer_{layer}")(
                h, sh, radial, species, senders, receivers, extra)

        out = e3nn.flax.Linear(f"{max(cfg.num_features // 2, 1)}x0e", name="readout_hidden")(h)
        out = e3nn.flax.Linear(f"{cfg.n_outputs}x0e", name="readout")(out).array
        scale0 = jnp.asarray(cfg.species_scale or (1.0,) * n_species, dtype)
        shift0 = jnp.asarray(cfg.species_shift or (0.0,) * n_species, dtype)
        scale = self.param("species_scale", lambda _: scale0)
        shift = self.param("species_shift", lambda _: shift0)
        first = out[:, 0] * scale[species] + shift[species]
        out = out.at[:, 0].set(first)
        return out, h
