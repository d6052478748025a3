"""Radial MLP and the edge work of one interaction, optionally in blocks of edges.

The radial MLP (edge distances -> tensor-product weights) and the tensor-product convolution
are the per-edge work of a NequIP layer. Differentiating them in one piece keeps every
per-edge intermediate of the layer alive at once: about 16 KB per edge at l_max 1 with 32
features, 1.6 GB for 100k edges. :func:`edge_messages` therefore runs graphs with more edges
than ``edge_block`` as a scan over blocks of edges whose backward pass recomputes the block's
forward pass (``jax.checkpoint``). The result is the same sum in another order; memory is
bounded by one block, at the price of recomputing the forward edge work. On CPU the blocked
form is faster overall, because its buffers stay in cache (``benchmarks/bench_memory.py``).
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from .cm import _NORM
from .tensor_product import conv_irreps_out, conv_messages_cm

__all__ = ["RadialMLP", "radial_mlp", "edge_messages", "resolve_edge_block"]

# Edges per block for 4-byte floats (half as many for float64, so a block holds the same bytes).
# Measured in one process, alternating (benchmarks/sweep_edge_block.py, rattled NaCl, median of
# per-round ratios): with one core, blocks of 512 took 0.90 of the time of 1024 at 1000 atoms
# (l_max 1), 0.80 at l_max 2, 0.94 at 512 atoms and 0.87 at 4096 atoms (205 blocks against 103);
# float64 blocks of 256 took 0.91 of 512. With two cores, 512 took 1.07 of 1024 (each kernel is
# split between the threads, so a larger block amortises the split). Earlier, 1024 took
# 0.64-0.67 of the time of 4096 (1000 atoms, l_max 1, 1 thread; 0.91 with 2 threads).
CPU_EDGE_BLOCK = 1024  # two or more cores
CPU_EDGE_BLOCK_ONE_CORE = 512
# The backward pass scatters each block's node cotangent into the scan's carry in place, so a
# block costs O(edges in it); the cap only bounds the number of blocks for sizes not measured.
MAX_AUTO_BLOCKS = 256


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), which XLA's CPU thread pool follows."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_edge_block(edge_block: int | str | None, n_edges: int, itemsize: int = 4,
                       cores: int | None = None) -> int | None:
    """``"auto"`` on the CPU backend: blocks of :data:`CPU_EDGE_BLOCK` edges with two or more
    cores (``cores``, default :func:`available_cores`), :data:`CPU_EDGE_BLOCK_ONE_CORE` with one,
    scaled by 4 / ``itemsize`` (the bytes of the float type), but at most :data:`MAX_AUTO_BLOCKS`
    blocks; ``None`` on other backends. Other values pass through."""
    if edge_block == "auto":
        if jax.default_backend() != "cpu":
            return None
        cores = available_cores() if cores is None else cores
        block = CPU_EDGE_BLOCK if cores > 1 else CPU_EDGE_BLOCK_ONE_CORE
        return max(block * 4 // itemsize, -(-n_edges // MAX_AUTO_BLOCKS))
    return edge_block


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
                  edge_block: int | str | None) -> tuple[jax.Array, e3nn.Irreps]:
    """sum over edges into receivers of radial_mlp(radial) * (x[senders] ⊗ sh), component-major.

    Args:
        kernels: radial MLP kernels (:class:`RadialMLP`).
        x: (N, x_irreps.dim) component-major node features (see :mod:`.cm`); sh: (E,
            sh_irreps.dim) edge spherical harmonics; radial: (E, n_basis).
        senders, receivers: (E,) int, sorted by receiver.
        n_nodes: N, static. The last node must be a padding node (blocks are padded with
            edges into it that carry exactly zero).
        edge_block: edges per block; ``None`` or >= E: one piece, no recomputation;
            ``"auto"``: see :func:`resolve_edge_block`.

    Returns:
        ``(out, out_irreps)`` as :func:`.tensor_product.conv_messages_cm`.
    """
    n_edges = radial.shape[0]
    edge_block = resolve_edge_block(edge_block, n_edges, jnp.dtype(radial.dtype).itemsize)
    out_irreps = conv_irreps_out(x_irreps, sh_irreps, filter_ir_out)

    def piece(xa, sha, rad, snd, rcv):
        w = radial_mlp(kernels, rad)
        return conv_messages_cm(xa, x_irreps, sha, sh_irreps, w, snd, rcv, n_nodes, filter_ir_out)[0]

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
