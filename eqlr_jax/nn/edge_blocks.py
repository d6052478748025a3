"""Radial MLP and the edge work of one interaction, optionally in blocks of edges.

The radial MLP (edge distances -> tensor-product weights) and the tensor-product convolution
are the per-edge work of a NequIP layer. Differentiating them in one piece keeps every
per-edge intermediate of the layer alive at once: about 16 KB per edge at l_max 1 with 32
features, 1.6 GB for 100k edges. :func:`edge_messages` therefore runs graphs with more edges
than ``edge_block`` as a scan over blocks of edges whose backward pass recomputes the block's
forward pass (``jax.checkpoint``). The result is the same sum in another order; memory is
bounded by one block, at the price of recomputing the forward edge work. On CPU the blocked
form is faster overall, because its buffers stay in cache (``benchmarks/bench_memory.py``).
The block size is a speed option (:class:`eqlr_jax.Runtime`); this module gets it resolved.
"""
from __future__ import annotations

import math
from typing import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from .cm import _NORM
from .tensor_product import conv_irreps_out, conv_messages_cm

__all__ = ["RadialMLP", "radial_mlp", "edge_messages"]

# e3nn's normalisation of silu, 1 / sqrt(E[silu(z)^2]) for z ~ N(0, 1) (= cm's constant; tests/test_cm.py
# checks it against e3nn.normalize_function).
_SILU_NORM = _NORM["even"]


def _silu(x: jax.Array) -> jax.Array:
    """e3nn's normalised SiLU, ``e3nn.normalize_function(jax.nn.silu)``: c x sigmoid(x).

    In float64 the sigmoid is computed as (1 + tanh(x / 2)) / 2 (the same function, 4e-16 from
    it): XLA:CPU's float64 logistic goes through a slow exp, and the radial MLP in float64 took
    2.8 times its float32 time with it against 2.2 times with tanh (28,672 edges, 1 thread). In
    float32 both forms run at the same speed; it keeps jax.nn.sigmoid.
    """
    if x.dtype == jnp.float64:
        return (_SILU_NORM * 0.5) * x * (1.0 + jnp.tanh(0.5 * x))
    return _SILU_NORM * (x * jax.nn.sigmoid(x))


class _Kernel(nn.Module):
    shape: tuple[int, int]

    @nn.compact
    def __call__(self, dtype):
        return self.param("kernel", nn.initializers.normal(stddev=1.0), self.shape, dtype)


class RadialMLP(nn.Module):
    """Declares the kernels of a bias-free MLP; apply them with :func:`radial_mlp`.

    Same parameter tree, initialisation and function as
    ``e3nn.flax.MultiLayerPerceptron(sizes, act=silu, output_activation=False)`` with e3nn's
    default "path" gradient normalisation, but the parameters are returned instead of applied,
    so that the MLP can run inside a scan over blocks of edges.
    """

    sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, n_in: int, dtype) -> list[jax.Array]:
        kernels, fan_in = [], n_in
        for i, h in enumerate(self.sizes):
            kernels.append(_Kernel((fan_in, h), name=f"Dense_{i}")(dtype))
            fan_in = h
        return kernels


def radial_mlp(kernels: Sequence[jax.Array], x: jax.Array) -> jax.Array:
    """(E, n_in) -> (E, sizes[-1]): x @ K_i / sqrt(fan_in), normalised SiLU between layers."""
    for i, k in enumerate(kernels):
        x = (x @ k.astype(x.dtype)) * (1.0 / math.sqrt(k.shape[0]))
        if i < len(kernels) - 1:
            x = _silu(x)
    return x


def edge_messages(kernels, x: jax.Array, x_irreps, sh: jax.Array, sh_irreps, radial: jax.Array,
                  senders: jax.Array, receivers: jax.Array, n_nodes: int, filter_ir_out,
                  edge_block: int | None, scatter_columns: int | None = None
                  ) -> tuple[jax.Array, e3nn.Irreps]:
    """sum over edges into receivers of radial_mlp(radial) * (x[senders] ⊗ sh), component-major.

    Args:
        kernels: radial MLP kernels (:class:`RadialMLP`).
        x: (N, x_irreps.dim) component-major node features (see :mod:`.cm`); sh: (E,
            sh_irreps.dim) edge spherical harmonics; radial: (E, n_basis).
        senders, receivers: (E,) int, sorted by receiver.
        n_nodes: N, static. The last node must be a padding node (blocks are padded with
            edges into it that carry exactly zero).
        edge_block: edges per block; ``None`` or >= E: one piece, no recomputation
            (``Runtime.edge_block`` resolved by :func:`eqlr_jax.runtime.tuning.resolve_edge_block`).
        scatter_columns: column chunk of the message scatter (see
            :func:`.tensor_product.sum_into_receivers`); ``None``: one scatter.

    Returns:
        ``(out, out_irreps)`` as :func:`.tensor_product.conv_messages_cm`.
    """
    n_edges = radial.shape[0]
    out_irreps = conv_irreps_out(x_irreps, sh_irreps, filter_ir_out)

    def piece(xa, sha, rad, snd, rcv):
        w = radial_mlp(kernels, rad)
        return conv_messages_cm(xa, x_irreps, sha, sh_irreps, w, snd, rcv, n_nodes, filter_ir_out,
                                scatter_columns)[0]

    if edge_block is None or n_edges <= edge_block:
        return piece(x, sh, radial, senders, receivers), out_irreps

    n_blocks = -(-n_edges // edge_block)
    size = -(-n_edges // n_blocks)
    pad = n_blocks * size - n_edges

    def blocks(a, fill):
        a = jnp.concatenate([a, jnp.full((pad,) + a.shape[1:], fill, a.dtype)]) if pad else a
        return a.reshape((n_blocks, size) + a.shape[1:])

    last = n_nodes - 1  # padding node: keeps receivers sorted; zero sh makes the edges inert
    xs = (blocks(sh, 0), blocks(radial, 0), blocks(senders, last), blocks(receivers, last))
    step = jax.checkpoint(piece)

    def body(acc, blk):
        return acc + step(x, *blk), None

    acc0 = jnp.zeros((n_nodes, out_irreps.dim), x.dtype)
    acc, _ = jax.lax.scan(body, acc0, xs)
    return acc, out_irreps
