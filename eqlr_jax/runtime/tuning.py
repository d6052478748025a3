"""Speed policy: the values that :class:`~eqlr_jax.runtime.Runtime`'s ``"auto"`` options stand for.

The network (``eqlr_jax.nn``) asks these functions once per trace, with the sizes it sees, and
hands the resolved values to its kernels; the kernels themselves never look at the backend or
the machine. Measurements behind the constants: ``benchmarks/README.md`` ("Memory and edge
blocks", "Block size") and README.md ("Performance against PyTorch NequIP (GPU)").
"""
from __future__ import annotations

import os

import jax

__all__ = ["CPU_EDGE_BLOCK", "CPU_EDGE_BLOCK_ONE_CORE", "MAX_AUTO_BLOCKS", "GPU_SCATTER_COLUMNS",
           "available_cores", "resolve_edge_block", "resolve_scatter_columns"]

# Edges per block for 4-byte floats (half as many for float64, so a block holds the same bytes).
# Small blocks keep a block's buffers in cache. With two or more cores XLA splits each kernel
# between the threads, and a larger block amortises the split, so the block is larger there.
CPU_EDGE_BLOCK = 1024  # two or more cores
CPU_EDGE_BLOCK_ONE_CORE = 512
# The backward pass scatters each block's node cotangent into the scan's carry in place, so a
# block costs O(edges in it); the cap only bounds the number of blocks for sizes not measured.
MAX_AUTO_BLOCKS = 256

# XLA:GPU's scatter-add with sorted indices is fast for narrow rows and very slow for wide ones
# (l_max 2 messages are thousands of columns wide); a few scatters of a few hundred columns each
# are much faster than one (benchmarks/archive/gpu_scatter.py). On CPUs one scatter is faster.
GPU_SCATTER_COLUMNS = 400


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), which XLA's CPU thread pool follows."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _backend(backend: str | None) -> str:
    return jax.default_backend() if backend is None else backend


def resolve_edge_block(edge_block: int | str | None, n_edges: int, itemsize: int = 4,
                       cores: int | None = None, backend: str | None = None) -> int | None:
    """``"auto"`` on the CPU backend (``backend``, default ``jax.default_backend()``): blocks of
    :data:`CPU_EDGE_BLOCK` edges with two or more cores (``cores``, default
    :func:`available_cores`), :data:`CPU_EDGE_BLOCK_ONE_CORE` with one, scaled by 4 /
    ``itemsize`` (the bytes of the float type), but at most :data:`MAX_AUTO_BLOCKS` blocks;
    ``None`` on other backends. Other values pass through."""
    if edge_block == "auto":
        if _backend(backend) != "cpu":
            return None
        cores = available_cores() if cores is None else cores
        block = CPU_EDGE_BLOCK if cores > 1 else CPU_EDGE_BLOCK_ONE_CORE
        return max(block * 4 // itemsize, -(-n_edges // MAX_AUTO_BLOCKS))
    return edge_block


def resolve_scatter_columns(scatter_columns: int | str | None, backend: str | None = None) -> int | None:
    """``"auto"``: :data:`GPU_SCATTER_COLUMNS` on the GPU backend (``backend``, default
    ``jax.default_backend()``), ``None`` (one scatter) elsewhere. Other values pass through."""
    if scatter_columns == "auto":
        return GPU_SCATTER_COLUMNS if _backend(backend) == "gpu" else None
    return scatter_columns
