"""NequIP network in Flax + e3nn-jax.

Pipeline: species (+ optional extra per-atom scalars) -> linear embedding -> ``num_layers`` x
interaction block (linear, tensor-product convolution with spherical harmonics weighted by a
radial MLP, scatter-sum / sqrt(avg_num_neighbors), linear, species-indexed self-connection,
gate) -> scalar readout -> per-species scale and shift.

Features are kept in the component-major layout of :mod:`.cm` from the embedding to the readout;
the layers compute exactly what e3nn-jax's ``Linear``, ``gate`` and ``tensor_product`` compute,
with the same parameter tree (``tests/test_cm.py`` compares the whole network with the same
network written with e3nn's layers, ``tests/e3nn_reference.py``).
"""
from __future__ import annotations

import math

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from ..runtime import Runtime, tuning
from . import cm
from .config import NequIPConfig
from .edge_blocks import RadialMLP, edge_messages
from .radial import bessel_basis, polynomial_envelope
from .tensor_product import num_weights

__all__ = ["NequIP", "hidden_irreps", "edge_features", "node_attributes", "scale_shift", "initial_scale_shift"]


def hidden_irreps(cfg: NequIPConfig) -> e3nn.Irreps:
    """Hidden feature irreps, e.g. ``32x0e+32x0o+32x1o+32x1e`` (l_max 1, parity)."""
    irs = []
    for l in range(cfg.l_max + 1):
        ps = (1, -1) if cfg.parity else ((-1) ** l,)
        # NequIP order: for each l, the parity of the spherical harmonics first
        ps = sorted(ps, key=lambda p: p != (-1) ** l)
        irs += [(cfg.num_features, (l, p)) for p in ps]
    return e3nn.Irreps(irs)


def _gate_input(target: e3nn.Irreps) -> e3nn.Irreps:
    """Irreps to feed ``e3nn.gate`` so it outputs ``target``: scalars, one 0e gate per gated irrep,
    then the gated (l > 0) irreps."""
    scalars = e3nn.Irreps([(m, ir) for m, ir in target if ir.l == 0])
    gated = e3nn.Irreps([(m, ir) for m, ir in target if ir.l > 0])
    if gated.num_irreps == 0:
        return scalars
    return scalars + e3nn.Irreps(f"{gated.num_irreps}x0e") + gated


class Interaction(nn.Module):
    """One NequIP interaction block on component-major features (:mod:`.cm`).

    Output irreps: ``target`` (those reachable from the input). Called with ``(h, h_irreps, ...)``,
    returns ``(h_out, h_out_irreps)``; ``h``: a component-major array or a list of its blocks,
    ``h_out``: a list of blocks (:func:`.cm.as_blocks`). ``edge_block`` and ``scatter_columns``:
    resolved speed options (see :func:`.edge_blocks.edge_messages`).
    """

    target: e3nn.Irreps
    n_species: int
    avg_num_neighbors: float
    radial_mlp: tuple[int, ...]
    edge_block: int | None = None
    scatter_columns: int | None = None

    @nn.compact
    def __call__(self, h, h_irreps, sh, sh_irreps, radial, species, senders, receivers, node_inputs=None):
        n_nodes = species.shape[0]
        # the irreps of e3nn.tensor_product(h_irreps, sh_irreps), by irrep algebra alone
        reachable = {ir for _, ir1 in e3nn.Irreps(h_irreps) for _, ir2 in e3nn.Irreps(sh_irreps) for ir in ir1 * ir2}
        target = e3nn.Irreps([(m, ir) for m, ir in self.target if ir in reachable])
        gate_in = _gate_input(target)

        # self-connection: a tensor product with the node attributes (one-hot species, plus
        # any extra per-atom scalars such as a charge encoding)
        sc, sc_irreps = cm.Linear(gate_in, num_indexed_weights=self.n_species, force_irreps_out=True,
                                  out_blocks=True, name="self_connection")(h, h_irreps, species)
        if node_inputs is not None:
            extra = cm.Linear(gate_in, force_irreps_out=True, out_blocks=True, name="self_connection_inputs")(
                h, h_irreps, node_inputs)[0]
            sc = [a + b for a, b in zip(sc, extra)]

        x, x_irreps = cm.Linear(h_irreps, name="linear_1")(h, h_irreps)
        n_weights = num_weights(x_irreps, sh_irreps, gate_in)
        kernels = RadialMLP(self.radial_mlp + (n_weights,), name="radial_mlp")(radial.shape[-1], radial.dtype)
        # = segment_sum(e3nn.tensor_product(x[senders], sh, filter_ir_out=gate_in) * mlp(radial), receivers)
        agg, agg_irreps = edge_messages(kernels, x, x_irreps, sh, sh_irreps, radial, senders, receivers, n_nodes,
                                        gate_in, self.edge_block, self.scatter_columns)
        agg = agg / math.sqrt(self.avg_num_neighbors)
        y, y_irreps = cm.Linear(gate_in, force_irreps_out=True, out_blocks=True, name="linear_2")(agg, agg_irreps)
        assert y_irreps == sc_irreps
        return cm.gate([a + b for a, b in zip(y, sc)], y_irreps, out_blocks=True)


def edge_features(cfg: NequIPConfig, edge_vectors, edge_mask):
    """Spherical harmonics and radial basis of the edges, exactly zero on masked edges.

    Returns ``(sh, sh_irreps, radial)``: sh (E, sh_irreps.dim) (multiplicity 1 per l, so the
    same in e3nn's and the component-major layout), radial (E, num_bessel).
    """
    # Padded edges get a safe vector beyond the cutoff: finite norm, zero envelope.
    safe = jnp.asarray([2.0 * cfg.r_max, 0.0, 0.0], edge_vectors.dtype)
    vec = jnp.where(edge_mask[:, None], edge_vectors, safe)
    r = jnp.sqrt(jnp.sum(vec**2, axis=-1))
    env = polynomial_envelope(r, cfg.r_max, cfg.polynomial_p) * edge_mask
    radial = bessel_basis(r, cfg.num_bessel, cfg.r_max) * env[:, None]
    sh_irreps = e3nn.Irreps.spherical_harmonics(cfg.l_max)
    sh = e3nn.spherical_harmonics(sh_irreps, vec, normalize=True, normalization="component").array
    return sh * env[:, None], sh_irreps, radial  # masked / out-of-range edges carry exactly zero


def node_attributes(cfg: NequIPConfig, species, node_inputs, dtype):
    """``(attrs, extra)``: one-hot species followed by the extra per-atom scalars (N, S + n),
    and the extra scalars alone (or None). Checks node_inputs against the config."""
    if (node_inputs is None) != (cfg.n_node_inputs == 0):
        raise ValueError(f"config.n_node_inputs={cfg.n_node_inputs} but node_inputs "
                         f"{'missing' if node_inputs is None else 'given'}")
    onehot = jax.nn.one_hot(species, len(cfg.species), dtype=dtype)
    if node_inputs is None:
        return onehot, None
    extra = node_inputs.astype(dtype)
    return jnp.concatenate([onehot, extra], -1), extra


def initial_scale_shift(cfg: NequIPConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Initial values of the ``species_scale`` (eV) and ``species_shift`` (eV) parameters."""
    n_species = len(cfg.species)
    return cfg.species_scale or (1.0,) * n_species, cfg.species_shift or (0.0,) * n_species


def scale_shift(module: nn.Module, cfg: NequIPConfig, out, species):
    """Column 0 of ``out`` times the per-species scale plus the per-species shift (parameters
    ``species_scale`` and ``species_shift`` of ``module``)."""
    scale0, shift0 = initial_scale_shift(cfg)
    scale = module.param("species_scale", lambda _: jnp.asarray(scale0, out.dtype))
    shift = module.param("species_shift", lambda _: jnp.asarray(shift0, out.dtype))
    return out.at[:, 0].set(out[:, 0] * scale[species] + shift[species])


class NequIP(nn.Module):
    """Per-atom scalar outputs from edge vectors: ``NequIP(config, runtime=Runtime())``.

    ``config``: the model's hyperparameters. ``runtime``: speed and memory options
    (:class:`eqlr_jax.Runtime`); they do not change the parameters, and change the outputs by
    rounding only.

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
    runtime: Runtime = Runtime()
    readout: bool = True  # False: no readout layers; ``outputs`` is None (a feature extractor)

    @nn.compact
    def __call__(self, edge_vectors, species, senders, receivers, edge_mask, node_inputs=None):
        cfg = self.config
        n_species = len(cfg.species)
        sh, sh_irreps, radial = edge_features(cfg, edge_vectors, edge_mask)
        edge_block = tuning.resolve_edge_block(self.runtime.edge_block, radial.shape[0],
                                               jnp.dtype(radial.dtype).itemsize)
        scatter_columns = tuning.resolve_scatter_columns(self.runtime.scatter_columns)
        attrs, extra = node_attributes(cfg, species, node_inputs, edge_vectors.dtype)
        h, h_irreps = cm.Linear(f"{cfg.num_features}x0e", name="embedding")(attrs, f"{attrs.shape[-1]}x0e")

        hidden = hidden_irreps(cfg)
        radial_mlp = (cfg.radial_mlp_width,) * cfg.radial_mlp_depth
        for layer in range(cfg.num_layers):
            target = hidden if layer < cfg.num_layers - 1 else e3nn.Irreps(f"{cfg.num_features}x0e")
            h, h_irreps = Interaction(target, n_species, cfg.avg_num_neighbors, radial_mlp, edge_block,
                                      scatter_columns, name=f"layer_{layer}")(
                h, h_irreps, sh, sh_irreps, radial, species, senders, receivers, extra)
        features = e3nn.IrrepsArray(h_irreps, cm.concat_blocks(cm.as_blocks(h, h_irreps)))
        if not self.readout:
            return None, features
        out, out_irreps = cm.Linear(f"{max(cfg.num_features // 2, 1)}x0e", name="readout_hidden")(h, h_irreps)
        out, _ = cm.Linear(f"{cfg.n_outputs}x0e", name="readout")(out, out_irreps)
        out = scale_shift(self, cfg, out, species)
        return out, features  # scalars only: the component-major layout is e3nn's
