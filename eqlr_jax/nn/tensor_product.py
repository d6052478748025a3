"""Tensor-product convolution of NequIP, written for speed on CPU (XLA).

:func:`conv_messages` computes, for every receiving node,

    sum over its edges e of  w_e * (x[sender(e)] ⊗ Y_e)

with the tensor product filtered to ``filter_ir_out`` and the per-edge weights ``w`` (one per
output channel), exactly as::

    msg = e3nn.tensor_product(x[senders], sh, filter_ir_out=filter_ir_out) * w
    jax.ops.segment_sum(msg.array, receivers, n_nodes)

(same irreps, same layout, same weight order, component normalisation), but without building
the wide (edges × irreps) message array. Each path is evaluated as a short sum of elementwise
products over the non-zero Clebsch-Gordan coefficients with channels as the fast (contiguous)
axis, and each output component is scattered on its own. On a 2-core CPU this is 2-3x faster
than the generic version, whose einsum and concatenations of edge-sized arrays dominate.
"""
from __future__ import annotations

import functools

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["conv_messages", "num_weights"]


@functools.lru_cache(maxsize=None)
def _sparse_cg(l1: int, l2: int, l3: int) -> tuple:
    """Non-zero entries (i, j, k, value) of the component-normalised CG tensor (d1, d2, d3)."""
    cg = np.asarray(e3nn.clebsch_gordan(l1, l2, l3), dtype=np.float64) * np.sqrt(2 * l3 + 1)
    idx = np.argwhere(np.abs(cg) > 1e-12)
    return tuple((int(i), int(j), int(k), float(cg[i, j, k])) for i, j, k in idx)


def _paths(x_irreps: e3nn.Irreps, sh_irreps: e3nn.Irreps, filter_ir_out):
    """Paths (index of x block, index of sh block, ir_out) in e3nn's loop order."""
    keep = {ir for _, ir in e3nn.Irreps(filter_ir_out)}
    out = []
    for a, (_, ir1) in enumerate(x_irreps):
        for b, (_, ir2) in enumerate(sh_irreps):
            for ir3 in ir1 * ir2:
                if ir3 in keep:
                    out.append((a, b, ir3))
    return out


def num_weights(x_irreps, sh_irreps, filter_ir_out) -> int:
    """Per-edge weights :func:`conv_messages` needs: one per channel of every path."""
    x_irreps, sh_irreps = e3nn.Irreps(x_irreps).regroup(), e3nn.Irreps(sh_irreps).regroup()
    return x_irreps[0].mul * len(_paths(x_irreps, sh_irreps, filter_ir_out))


def conv_messages(x: e3nn.IrrepsArray, sh: e3nn.IrrepsArray, w: jax.Array, senders: jax.Array,
                  receivers: jax.Array, n_nodes: int, filter_ir_out) -> e3nn.IrrepsArray:
    """Aggregated tensor-product messages per node.

    Args:
        x: (N, x.irreps.dim) node features; all blocks must have the same multiplicity C.
        sh: (E, sh.irreps.dim) edge spherical harmonics (multiplicity 1 per l).
        w: (E, P*C) per-edge weights, one per channel of every path, in the order of
            ``e3nn.tensor_product(...).irreps`` (sorted output).
        senders, receivers: (E,) int; receivers sorted.
        n_nodes: N (static).
        filter_ir_out: irreps to keep.

    Returns:
        IrrepsArray (N, ...) with the irreps of ``e3nn.tensor_product(x, sh, filter_ir_out)``.
    """
    x = x.regroup()
    sh = sh.regroup()
    muls = {mul for mul, _ in x.irreps}
    if len(muls) != 1 or any(mul != 1 for mul, _ in sh.irreps):
        raise ValueError(f"conv_messages needs one multiplicity in x ({x.irreps}) and 1 in sh ({sh.irreps})")
    c = muls.pop()
    paths = _paths(x.irreps, sh.irreps, filter_ir_out)
    # e3nn sorts the output irreps stably: the weights of path q start at C * rank(q)
    sorted_irreps, perm, _ = e3nn.Irreps([(c, ir3) for _, _, ir3 in paths]).sort()
    if w.shape[-1] != c * len(paths):
        raise ValueError(f"expected {c * len(paths)} weights per edge, got {w.shape[-1]}")
    # node features with channels last: (N, d, C), gathered on the edges
    xs = [jnp.swapaxes(chunk, -1, -2)[senders] for chunk in x.chunks]
    ys = [chunk[:, 0, :] for chunk in sh.chunks]  # (E, d2)
    blocks = [None] * len(paths)
    for q, (a, b, ir3) in enumerate(paths):
        rank = perm[q]
        wq = w[:, rank * c:(rank + 1) * c]
        ir1, ir2 = x.irreps[a].ir, sh.irreps[b].ir
        comps = []
        for k in range(ir3.dim):
            acc = None
            for i, j, kk, cg in _sparse_cg(ir1.l, ir2.l, ir3.l):
                if kk != k:
                    continue
                term = (cg * ys[b][:, j])[:, None] * xs[a][:, i, :]
                acc = term if acc is None else acc + term
            if acc is None:
                comps.append(jnp.zeros((n_nodes, c), x.dtype))
            else:
                comps.append(jax.ops.segment_sum(acc * wq, receivers, num_segments=n_nodes,
                                                 indices_are_sorted=True))
        blocks[rank] = jnp.stack(comps, axis=-1)  # (N, C, d3): e3nn's mul_ir layout
    out = jnp.concatenate([blk.reshape(n_nodes, -1) for blk in blocks], axis=-1)
    return e3nn.IrrepsArray(sorted_irreps, out).regroup()
