"""Tensor-product convolution of NequIP with a hand-written backward pass.

:func:`conv_messages` computes, for every receiving node,

    sum over its edges e of  w_e * (x[sender(e)] ⊗ Y_e)

with the tensor product filtered to ``filter_ir_out`` and per-edge weights ``w`` (one per
output channel), exactly as::

    msg = e3nn.tensor_product(x[senders], sh, filter_ir_out=filter_ir_out) * w
    jax.ops.segment_sum(msg.array, receivers, n_nodes)

(same irreps, same layout, same weight order, component normalisation).

How it is fast on CPU (XLA):

- Features are moved, at the node level, into a component-major layout (for every irrep block,
  all channels of component 0, then of component 1, ...), so that every Clebsch-Gordan term is an
  elementwise product of contiguous (edges, channels) slices. Each path is a short sum over the
  non-zero CG coefficients; no dense CG tensor, no wide einsum.
- One gather of node features and one scatter of messages per call. The message columns are
  concatenated from stacks of three (:data:`FWD_COLUMNS_PER_KERNEL`): fewer kernels to compile
  at the same run time.
- The backward pass of the per-edge messages is written by hand (``jax.custom_vjp``); with the
  gather and scatter around it (left to autodiff) it is one gather of the output cotangent and
  one scatter of the feature cotangent. Left to autodiff, every slice of the forward pass becomes
  a zero-padded node-sized array in the backward pass, and XLA sums dozens of them per block.
  Its per-block outputs are assembled by :func:`_stack_cols`, so that XLA fuses them into a few
  kernels instead of one per column (compile time).

The backward rule is itself ordinary JAX code, so reverse-over-reverse differentiation (training
on forces, Hessians with ``jax.jacrev``) works. Forward-mode differentiation (``jax.jvp``,
``jax.jacfwd``, ``jax.hessian``) does not pass through a ``custom_vjp``.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

from .cm import swap_layout

__all__ = ["conv_messages", "conv_messages_cm", "conv_irreps_out", "num_weights", "sum_into_receivers"]


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
    plan, _ = _plan(*_regrouped(x_irreps, sh_irreps, filter_ir_out))
    return plan.c * plan.n_w


def conv_irreps_out(x_irreps, sh_irreps, filter_ir_out) -> e3nn.Irreps:
    """Irreps of the convolution's output: those of ``e3nn.tensor_product``, regrouped."""
    _, out_irreps = _plan(*_regrouped(x_irreps, sh_irreps, filter_ir_out))
    return out_irreps


def _regrouped(x_irreps, sh_irreps, filter_ir_out):
    return e3nn.Irreps(x_irreps).regroup(), e3nn.Irreps(sh_irreps).regroup(), e3nn.Irreps(filter_ir_out)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Static description of one convolution (hashable, so it can be a static argument).

    ``out_terms[o]``: for output column block o (C channels, component-major order), the weight
    block and the CG terms ``(x column block, sh column, cg)`` summed into it.
    """

    c: int
    n_w: int  # weight blocks (paths), C weights each
    x_blocks: int  # number of (C-wide) column blocks of x in component-major layout
    sh_dim: int
    out_terms: tuple  # per output column block: (weight block, ((x col block, sh col, cg), ...))


@functools.lru_cache(maxsize=None)
def _plan(x_irreps: e3nn.Irreps, sh_irreps: e3nn.Irreps, filter_ir_out: e3nn.Irreps):
    c = x_irreps[0].mul
    paths = _paths(x_irreps, sh_irreps, filter_ir_out)
    sorted_irreps, perm, _ = e3nn.Irreps([(c, ir3) for _, _, ir3 in paths]).sort()
    x_start = np.cumsum([0] + [ir.dim for _, ir in x_irreps])  # in column blocks
    sh_start = np.cumsum([0] + [ir.dim for _, ir in sh_irreps])
    by_rank = sorted(range(len(paths)), key=lambda q: perm[q])
    # Paths with the same output irrep are adjacent in the sorted order; their blocks merge into
    # one component-major block (component k of every path, then component k+1, ...), so the
    # output is in the component-major layout of the regrouped irreps.
    groups = [list(g) for _, g in itertools.groupby(by_rank, key=lambda q: paths[q][2])]
    out_terms = []
    for group in groups:
        ir3 = paths[group[0]][2]
        for k in range(ir3.dim):
            for q in group:
                a, b, _ = paths[q]
                cg = _sparse_cg(x_irreps[a].ir.l, sh_irreps[b].ir.l, ir3.l)
                terms = tuple((int(x_start[a] + i), int(sh_start[b] + j), v) for i, j, kk, v in cg if kk == k)
                out_terms.append((int(perm[q]), terms))
    plan = _Plan(c=c, n_w=len(paths), x_blocks=int(x_start[-1]), sh_dim=int(sh_start[-1]), out_terms=tuple(out_terms))
    return plan, sorted_irreps.regroup()


_FUSE_MAX = 8  # XLA:CPU fuses a concatenate on a middle axis only up to this many operands


@functools.lru_cache(maxsize=None)
def _stack_shape(n: int) -> tuple[int, ...]:
    """Fan-outs (each <= _FUSE_MAX) of the stacking tree for n columns: the fewest levels, then
    the least padding."""
    best = None
    for levels in range(1, 5):
        for fans in itertools.product(range(1, _FUSE_MAX + 1), repeat=levels):
            total = int(np.prod(fans))
            if total >= n and (best is None or total < best[0]):
                best = (total, fans)
        if best is not None:
            return best[1]
    raise ValueError(f"too many columns to stack: {n}")


def _stack_cols(cols: list) -> jax.Array:
    """Columns (E, W) side by side: (E, P * W), P >= len(cols), zero columns after the last one
    (P = len(cols) whenever it factors into fan-outs <= 8, as for every l_max <= 2 here).

    Same as ``jnp.concatenate(cols + zeros, axis=-1)``, but built as a tree of stacks on middle
    axes of at most :data:`_FUSE_MAX` operands each, which XLA:CPU fuses with the producers of
    the columns into one kernel. A concatenate on the last axis, or of more operands, is not
    fused: every column is then a kernel of its own, and XLA:CPU compile time grows with the
    number of kernels (about 15-30 ms each). Used in the backward pass, where it cuts a quarter
    of the kernels of the network at no cost in run time; in the forward pass the fused kernel
    was slower (measured in the full network) than one kernel per column plus a copy.
    """
    fans = _stack_shape(len(cols))
    zeros = jnp.zeros_like(cols[0])
    level = list(cols) + [zeros] * (int(np.prod(fans)) - len(cols))
    for f in fans:  # (E, ..., W) -> (E, f, ..., W): no reshape between levels (it would
        # flatten the loop nest of the fused kernel and stop its vectorisation)
        level = [jnp.stack(level[i:i + f], axis=1) for i in range(0, len(level), f)]
    return level[0].reshape(level[0].shape[0], -1)


# Forward messages: columns per kernel. XLA:CPU compiles one kernel per concatenated column; a
# stack of k columns on a middle axis fuses into one kernel. In-process alternations, 1000 NaCl
# atoms, 1 thread: k = 3 cut 21 of 406 fusions at l_max 1 (run time 1.00-1.02x) and 102 of 607
# at l_max 2 (compile 33 -> 30 s, run time 0.98x); k = 4: 1.06x, k = 8: 1.12x, all in one: 1.22x.
FWD_COLUMNS_PER_KERNEL = 3


def _concat_cols(cols: list) -> jax.Array:
    """``jnp.concatenate(cols, axis=-1)`` for (E, W) columns, built from stacks of
    :data:`FWD_COLUMNS_PER_KERNEL` columns (same values and layout, fewer kernels)."""
    k, e = FWD_COLUMNS_PER_KERNEL, cols[0].shape[0]
    groups = [cols[i:i + k] for i in range(0, len(cols), k)]
    parts = [jnp.stack(g, axis=1).reshape(e, -1) if len(g) > 1 else g[0] for g in groups]
    return jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def _col(a, blk, c):
    return a[:, blk * c:(blk + 1) * c]


class _Cols:
    """Column slices of the gathered features (E, C) and of the spherical harmonics (E, 1),
    and their products, each made once per call: fewer primitives to trace and lower."""

    def __init__(self, plan, xg, y):
        self._c, self._xg, self._sh = plan.c, xg, y
        self._x, self._y, self._xy = {}, {}, {}

    def x(self, b):
        if b not in self._x:
            self._x[b] = _col(self._xg, b, self._c)
        return self._x[b]

    def y(self, j):
        if j not in self._y:
            self._y[j] = self._sh[:, j:j + 1]
        return self._y[j]

    def xy(self, b, j):
        if (b, j) not in self._xy:
            self._xy[b, j] = self.y(j) * self.x(b)
        return self._xy[b, j]


def _combine(terms):
    """sum of coef * array over (coef, array) pairs, one multiplication per distinct |coef|."""
    groups = {}
    for cg, a in terms:
        groups.setdefault(abs(cg), []).append((cg > 0, a))
    acc = None
    for mag, parts in groups.items():
        part = None
        for positive, a in parts:
            part = (a if positive else -a) if part is None else (part + a if positive else part - a)
        part = part if mag == 1.0 else part * mag
        acc = part if acc is None else acc + part
    return acc


def _pre_weight(cols, terms):
    """sum over terms of cg * y[:, j] * x[:, block]: (E, C), or None without terms."""
    return _combine([(cg, cols.xy(xb, j)) for xb, j, cg in terms]) if terms else None


def sum_into_receivers(msg: jax.Array, receivers: jax.Array, n_nodes: int, max_columns: int | None = None):
    """``segment_sum(msg, receivers, n_nodes)`` for receivers sorted ascending, (E, F) -> (N, F).

    With ``max_columns``, the columns are summed in near-equal chunks of at most that many, one
    scatter each (faster on GPUs, see :data:`eqlr_jax.runtime.tuning.GPU_SCATTER_COLUMNS`); the
    result is the same.
    """
    n_cols = msg.shape[-1]
    if max_columns is None or n_cols <= max_columns:
        return jax.ops.segment_sum(msg, receivers, num_segments=n_nodes, indices_are_sorted=True)
    k = -(-n_cols // max_columns)
    bounds = [n_cols * i // k for i in range(k + 1)]
    return jnp.concatenate([jax.ops.segment_sum(msg[:, a:b], receivers, num_segments=n_nodes, indices_are_sorted=True)
                            for a, b in zip(bounds[:-1], bounds[1:])], axis=-1)


def _conv(x_cm, y, w, senders, receivers, n_nodes, plan, scatter_columns):
    """Gather, per-edge messages (custom backward pass), scatter into the receivers (in column
    chunks of at most ``scatter_columns``, see :func:`sum_into_receivers`).

    The gather's and the scatter's own derivatives (a scatter of the feature cotangent, a gather
    of the output cotangent) are left to autodiff: the custom rule sees no integer arrays, which
    keeps reverse-over-reverse differentiation working inside the edge-block scan (JAX fails to
    transpose a scan twice through a custom_vjp with integer residuals).
    """
    msg = _messages(x_cm[senders], y, w, plan)
    return sum_into_receivers(msg, receivers, n_nodes, scatter_columns)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _messages(xg, y, w, plan):
    """(E, x dim) gathered features, (E, sh dim), (E, weights) -> (E, out dim) edge messages."""
    cols, xy = [], _Cols(plan, xg, y)
    for wb, terms in plan.out_terms:
        m = _pre_weight(xy, terms)
        cols.append(jnp.zeros((xg.shape[0], plan.c), xg.dtype) if m is None else m * _col(w, wb, plan.c))
    return _concat_cols(cols)


def _messages_fwd(xg, y, w, plan):
    return _messages(xg, y, w, plan), (xg, y, w)


def _messages_bwd(plan, res, gg):
    xg, y, w = res  # gg: (E, D_out) cotangent of every edge message
    c = plan.c
    cols = _Cols(plan, xg, y)
    dx = [[] for _ in range(plan.x_blocks)]  # (cg, array) terms of each cotangent column
    dy = [[] for _ in range(plan.sh_dim)]
    dw = {}
    for o, (wb, terms) in enumerate(plan.out_terms):
        if not terms:
            continue
        go = _col(gg, o, c)
        gw = go * _col(w, wb, c)
        dw.setdefault(wb, []).append((1.0, go * _pre_weight(cols, terms)))
        for xb, j, cg in terms:
            dx[xb].append((cg, cols.y(j) * gw))
            dy[j].append((cg, cols.x(xb) * gw))
    e = xg.shape[0]
    zeros = jnp.zeros((e, c), xg.dtype)
    dxg = _stack_cols([_combine(t) if t else zeros for t in dx])[:, :plan.x_blocks * c]
    dy = _stack_cols([_combine(t) if t else zeros for t in dy])
    dy = jnp.sum(dy.reshape(e, -1, c), axis=-1)[:, :plan.sh_dim]
    dw = _stack_cols([_combine(dw[q]) if q in dw else zeros for q in range(plan.n_w)])[:, :plan.n_w * c]
    return dxg, dy, dw


_messages.defvjp(_messages_fwd, _messages_bwd)


def conv_messages_cm(x_cm: jax.Array, x_irreps, sh: jax.Array, sh_irreps, w: jax.Array, senders: jax.Array,
                     receivers: jax.Array, n_nodes: int, filter_ir_out,
                     scatter_columns: int | None = None) -> tuple[jax.Array, e3nn.Irreps]:
    """:func:`conv_messages` on component-major features (see :mod:`.cm`).

    Args:
        x_cm: (N, x_irreps.dim) component-major node features; ``x_irreps`` sorted, one
            multiplicity C, each irrep once.
        sh: (E, sh_irreps.dim) edge spherical harmonics (multiplicity 1 per l).
        w, senders, receivers, n_nodes, filter_ir_out, scatter_columns: as :func:`conv_messages`.

    Returns:
        ``(out_cm, out_irreps)``: (N, out_irreps.dim) component-major, with the regrouped irreps
        of ``e3nn.tensor_product(...)`` (the paths into one irrep are the channels of its block,
        in e3nn's order).
    """
    x_irreps, sh_irreps = e3nn.Irreps(x_irreps), e3nn.Irreps(sh_irreps)
    muls = {mul for mul, _ in x_irreps}
    if (len(muls) != 1 or any(mul != 1 for mul, _ in sh_irreps) or x_irreps != x_irreps.regroup()
            or sh_irreps != sh_irreps.regroup()):
        raise ValueError(f"conv_messages needs sorted irreps, one multiplicity in x ({x_irreps}) and 1 in "
                         f"sh ({sh_irreps})")
    plan, out_irreps = _plan(x_irreps, sh_irreps, e3nn.Irreps(filter_ir_out))
    if w.shape[-1] != plan.c * plan.n_w:
        raise ValueError(f"expected {plan.c * plan.n_w} weights per edge, got {w.shape[-1]}")
    return _conv(x_cm, sh, w, senders, receivers, n_nodes, plan, scatter_columns), out_irreps


def conv_messages(x: e3nn.IrrepsArray, sh: e3nn.IrrepsArray, w: jax.Array, senders: jax.Array,
                  receivers: jax.Array, n_nodes: int, filter_ir_out,
                  scatter_columns: int | None = None) -> e3nn.IrrepsArray:
    """Aggregated tensor-product messages per node.

    Args:
        x: (N, x.irreps.dim) node features; all blocks must have the same multiplicity C.
        sh: (E, sh.irreps.dim) edge spherical harmonics (multiplicity 1 per l).
        w: (E, P*C) per-edge weights, one per channel of every path, in the order of
            ``e3nn.tensor_product(...).irreps`` (sorted output).
        senders, receivers: (E,) int; receivers sorted.
        n_nodes: N (static).
        filter_ir_out: irreps to keep.
        scatter_columns: sum the messages into the nodes in column chunks of at most this many
            (:func:`sum_into_receivers`; the network passes ``Runtime.scatter_columns``
            resolved); ``None``: one scatter. The result is the same.

    Returns:
        IrrepsArray (N, ...) with the irreps of ``e3nn.tensor_product(x, sh, filter_ir_out)``,
        regrouped.
    """
    if x.irreps != x.irreps.regroup():
        x = x.regroup()
    if sh.irreps != sh.irreps.regroup():
        sh = sh.regroup()
    out_cm, out_irreps = conv_messages_cm(swap_layout(x.array, x.irreps, True), x.irreps, sh.array, sh.irreps,
                                          w, senders, receivers, n_nodes, filter_ir_out, scatter_columns)
    return e3nn.IrrepsArray(out_irreps, swap_layout(out_cm, out_irreps, False))
