"""Equivariant layers on features in the component-major layout.

e3nn-jax stores a block ``mul x ir`` channel-major: index ``c * ir.dim + i``. Here every block is
stored component-major: index ``i * mul + c``, i.e. the block is an ``(N, ir.dim, mul)`` array.
In this layout an equivariant linear map of a block is one plain matrix product
``(N * ir.dim, mul_in) @ (mul_in, mul_out)`` with no transposes, gates are broadcasts, and the
tensor-product convolution (:mod:`.tensor_product`) reads contiguous ``(edges, channels)``
slices. The network keeps its features in this layout from the embedding to the readout (scalars
are the same in both layouts), so that XLA compiles and runs fewer, simpler kernels.

:class:`Linear` and :func:`gate` compute exactly what ``e3nn.flax.Linear`` and ``e3nn.gate``
compute, with the same parameter names, shapes and initialisation (``tests/test_cm.py``
checks both against e3nn-jax). A feature array travels with its :class:`e3nn.Irreps`, which
lists its blocks in storage order.
"""
from __future__ import annotations

import math

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["Linear", "gate", "swap_layout", "blocks", "as_blocks", "concat_blocks"]


def swap_layout(a: jax.Array, irreps: e3nn.Irreps, to_component_major: bool) -> jax.Array:
    """(N, irreps.dim) between e3nn's layout (per block channel-major, index c*d+i) and the
    component-major one (per block index i*C+c)."""
    parts, off = [], 0
    for mul, ir in irreps:
        shape = (-1, mul, ir.dim) if to_component_major else (-1, ir.dim, mul)
        blk = a[:, off:off + mul * ir.dim].reshape(shape)
        parts.append(jnp.swapaxes(blk, 1, 2).reshape(-1, mul * ir.dim))
        off += mul * ir.dim
    return jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def blocks(a: jax.Array, irreps: e3nn.Irreps) -> list[jax.Array]:
    """The blocks of a component-major array as ``(N, ir.dim, mul)`` arrays (no copies)."""
    out, off = [], 0
    for mul, ir in irreps:
        out.append(a[:, off:off + mul * ir.dim].reshape(-1, ir.dim, mul))
        off += mul * ir.dim
    return out


def as_blocks(x, irreps: e3nn.Irreps) -> list[jax.Array]:
    """Blocks ``(N, ir.dim, mul)`` of a component-major array, or ``x`` itself if it is already a
    list of blocks."""
    return list(x) if isinstance(x, (list, tuple)) else blocks(x, irreps)


def concat_blocks(parts: list[jax.Array]) -> jax.Array:
    """Blocks ``(N, ir.dim, mul)`` -> one component-major array (N, dim)."""
    return _concat(list(parts), parts[0].shape[0], parts[0].dtype)


def _concat(parts: list[jax.Array], n: int, dtype) -> jax.Array:
    parts = [p.reshape(n, -1) for p in parts]
    if not parts:
        return jnp.zeros((n, 0), dtype)
    return jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


class Linear(nn.Module):
    """``e3nn.flax.Linear(irreps_out, num_indexed_weights=..., force_irreps_out=...)`` on
    component-major features.

    Call as ``Linear(...)(x, irreps_in)`` (plain), ``(x, irreps_in, species)`` with int species
    indices and ``num_indexed_weights`` (one weight set per species), or
    ``(x, irreps_in, inputs)`` with float per-atom scalars ``inputs`` (N, d) (weights linear in
    the inputs, as e3nn's "mixed" linear). Returns ``(y, irreps_out)``, y component-major.
    ``x`` may also be a list of blocks (:func:`as_blocks`); with ``out_blocks``, ``y`` is a list
    of blocks too. Between layers the network passes lists: a block that is sliced out of a
    concatenated array is a copy, and every copy and concatenation is a kernel to compile.

    Blocks of ``irreps_in`` may repeat an irrep (as the convolution's output does); the
    parameters are those of e3nn on the regrouped input, whose rows are split among the blocks.
    """

    irreps_out: e3nn.Irreps
    num_indexed_weights: int | None = None
    force_irreps_out: bool = False
    out_blocks: bool = False

    @nn.compact
    def __call__(self, x, irreps_in: e3nn.Irreps, weights: jax.Array | None = None):
        irreps_in = e3nn.Irreps(irreps_in)
        in_blocks = as_blocks(x, irreps_in)
        n = in_blocks[0].shape[0]
        dtype = in_blocks[0].dtype
        regrouped = e3nn.Irreps([(m, ir) for m, ir in irreps_in if m > 0]).regroup()
        out_irreps = e3nn.Irreps(self.irreps_out).simplify()
        if not self.force_irreps_out:
            out_irreps = out_irreps.filter(keep=regrouped)
        # rows of the regrouped block each input block takes (e3nn's sort is stable)
        row0, seen = [], {}
        for mul, ir in irreps_in:
            row0.append(seen.get(ir, 0))
            seen[ir] = seen.get(ir, 0) + mul
        reg_index = {ir: i for i, (_, ir) in enumerate(regrouped)}

        if weights is None:
            coef, lead = None, ()
        elif jnp.issubdtype(weights.dtype, jnp.integer):
            if self.num_indexed_weights is None:
                raise ValueError("integer weights need num_indexed_weights")
            coef = jax.nn.one_hot(weights, self.num_indexed_weights, dtype=dtype)
            lead = (self.num_indexed_weights,)
        else:
            if self.num_indexed_weights is not None:
                raise ValueError("float weights and num_indexed_weights exclude each other")
            coef = weights.astype(dtype) / math.sqrt(weights.shape[-1])  # e3nn's sqrt(alpha)
            lead = (weights.shape[-1],)

        # parameters in e3nn's instruction order (flax derives each initial value from the order)
        params = {}
        for i_in, (mul_in, ir_in) in enumerate(regrouped):
            for i_out, (mul_out, ir_out) in enumerate(out_irreps):
                if ir_in == ir_out:
                    params[i_out] = self.param(f"w[{i_in},{i_out}] {regrouped[i_in]},{out_irreps[i_out]}",
                                               nn.initializers.normal(stddev=1.0), lead + (mul_in, mul_out),
                                               dtype)
        # e3nn's normalisation 1/sqrt(fan-in of the output irrep) ("element" paths, "path"
        # gradients) is applied to each output block (plain) or to the coefficients, rather than
        # to every weight
        outs = []
        for i_out, (mul_out, ir_out) in enumerate(out_irreps):
            if i_out not in params:
                outs.append(jnp.zeros((n, ir_out.dim, mul_out), dtype))
                continue
            mul_in = regrouped[reg_index[ir_out]].mul
            w = params[i_out].astype(dtype)
            acc = None
            for blk, (mul, ir), r0 in zip(in_blocks, irreps_in, row0):
                if ir != ir_out or mul == 0:
                    continue
                wb = w[..., r0:r0 + mul, :]
                if coef is None:
                    t = (blk.reshape(n * ir.dim, mul) @ wb).reshape(n, ir.dim, mul_out)
                else:  # sum_k coef_k (x @ W_k) = (coef (x) x) @ W as one product, W not transposed
                    k = lead[0]
                    xk = blk[:, :, None, :] * (coef * (1.0 / math.sqrt(mul_in)))[:, None, :, None]
                    t = (xk.reshape(n * ir.dim, k * mul) @ wb.reshape(k * mul, mul_out)).reshape(n, ir.dim, mul_out)
                acc = t if acc is None else acc + t
            outs.append(acc if coef is not None else acc * (1.0 / math.sqrt(mul_in)))
        return (outs if self.out_blocks else _concat(outs, n, dtype)), out_irreps


# e3nn's normalisation constants 1 / sqrt(E[f(z)^2]), z ~ N(0, 1), of silu and tanh, as
# ``e3nn.normalize_function`` computes them in float64 (on the 1,000,001 normal quantiles);
# tests/test_cm.py checks them against it (they were computed at the first trace before).
_NORM = {"even": 1.6765620560798837, "odd": 1.5925386426301724}


def _scalar_act(s: jax.Array, odd: list[bool]) -> jax.Array:
    """Normalised silu (even columns) and tanh (odd columns) of (N, K) scalars, as one sigmoid:
    silu(x) = x sigmoid(x), tanh(x) = 2 sigmoid(2x) - 1, so with per-column constants
    a = 1 | 2, e = c_even | 0, o = 0 | c_odd:  act = sigmoid(a x) (e x + 2 o) - o.

    One kernel for every scalar of a layer (and one for its derivative) instead of one per
    block. It also keeps XLA:CPU away from a slow case: an elementwise kernel with an exp and a
    division over a contiguous (N, 32) array took 0.3-0.6 s to compile (LLVM fully unrolls
    the 32-wide loop, then vectorises the row loop), against about 20 ms for a wider one
    (``benchmarks/archive/compile_kernels.py --kernels 10``).
    """
    dtype = s.dtype
    a = jnp.asarray([2.0 if o else 1.0 for o in odd], dtype)
    e = jnp.asarray([0.0 if o else _NORM["even"] for o in odd], dtype)
    o = jnp.asarray([_NORM["odd"] if o else 0.0 for o in odd], dtype)
    return jax.nn.sigmoid(a * s) * (e * s + 2.0 * o) - o


def gate(x, irreps: e3nn.Irreps, out_blocks: bool = False) -> tuple:
    """``e3nn.gate(y, even_act=silu, odd_act=tanh, even_gate_act=silu, odd_gate_act=tanh)`` on
    component-major features (normalised activations, as e3nn's default).

    The scalars (0e, 0o) come first in storage order; the last ``k`` scalar channels gate the
    ``k`` non-scalar irreps (in order), the others are activated (silu if even, tanh if odd).
    ``x``: a component-major array or a list of blocks (:func:`as_blocks`). Returns
    ``(y, irreps_out)``; y is a list of blocks with ``out_blocks``.
    """
    irreps = e3nn.Irreps(irreps)
    parts = as_blocks(x, irreps)
    n, dtype = parts[0].shape[0], parts[0].dtype
    scal = [(mul, ir, b[:, 0, :]) for (mul, ir), b in zip(irreps, parts) if ir.l == 0]
    vecs = [(mul, ir, b) for (mul, ir), b in zip(irreps, parts) if ir.l > 0]
    n_gates = sum(mul for mul, _, _ in vecs)
    n_scal = sum(mul for mul, _, _ in scal)
    if n_scal < n_gates:
        raise ValueError(f"gate: {irreps} has fewer scalars than non-scalar irreps")
    odd = [ir.p == -1 for mul, ir, _ in scal for _ in range(mul)]
    s = jnp.concatenate([a for _, _, a in scal], axis=-1) if len(scal) > 1 else scal[0][2]
    act = _scalar_act(s, odd)
    outs, out_irreps, pos = [], [], 0
    for mul, ir, _ in scal:  # the extra scalars: those before the gates
        k = max(0, min(mul, n_scal - n_gates - pos))
        if k > 0:
            outs.append(act[:, pos:pos + k])
            out_irreps.append((k, ir))
        pos += mul
    if vecs:
        g, odd_gates = act[:, n_scal - n_gates:], odd[n_scal - n_gates:]
        off = 0
        for mul, ir, b in vecs:
            outs.append(b * g[:, None, off:off + mul])
            flip = odd_gates[off:off + mul]
            if any(flip) and not all(flip):
                raise NotImplementedError("gate: a block gated by both even and odd scalars")
            out_irreps.append((mul, e3nn.Irrep(ir.l, -ir.p if flip[0] else ir.p)))
            off += mul
    if out_blocks:
        return [o.reshape(n, ir.dim, mul) for o, (mul, ir) in zip(outs, out_irreps)], e3nn.Irreps(out_irreps)
    return _concat(outs, n, dtype), e3nn.Irreps(out_irreps)
