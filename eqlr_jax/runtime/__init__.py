"""How a model runs, as opposed to what it computes.

A model is its :class:`~eqlr_jax.NequIPConfig` (hyperparameters, saved in model files) and its
parameters. Everything that only changes how fast, or in how much memory, it runs lives here
and is passed beside the config:

- :class:`Runtime`: per-call speed and memory options (a static argument of the compiled call);
- :mod:`.tuning`: the policy that turns ``"auto"`` options into values for this backend and machine;
- :mod:`.xla`: XLA compile-time tuning, applied when eqlr_jax is imported;
- :mod:`.compile_cache`: the opt-in persistent compilation cache.

This package imports nothing from the network (``eqlr_jax.nn`` imports :mod:`.tuning`), and
importing it does not import JAX.
"""
from __future__ import annotations

import dataclasses

from .compile_cache import enable_compilation_cache

__all__ = ["Runtime", "enable_compilation_cache"]


def _check_size_option(name: str, value) -> None:
    """``value`` must be ``None``, ``"auto"`` or an int >= 1 (not a bool)."""
    if not (value is None or value == "auto"
            or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)):
        raise ValueError(f"{name} must be an int >= 1, None or 'auto', got {value!r}")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Speed and memory options of a model call; none of them is part of the model.

    Two runtimes give the same results up to floating-point rounding (the same sums in another
    order). A runtime is not saved in model files. It is frozen and hashable: a static argument
    of the jit-compiled call, so a different runtime compiles a program of its own.

    Attributes:
        edge_block: graphs with more edges than this are processed in blocks of at most
            ``edge_block`` edges whose backward pass recomputes their forward pass (see
            ``nn/edge_blocks.py``). This bounds memory and, on CPU, is faster too (smaller
            buffers stay in cache; ``benchmarks/README.md``, "Memory and edge blocks").
            ``None``: never. ``"auto"`` (default): on CPU, blocks of
            :data:`.tuning.CPU_EDGE_BLOCK` edges with two or more cores,
            :data:`.tuning.CPU_EDGE_BLOCK_ONE_CORE` with one (half as many in float64), at most
            :data:`.tuning.MAX_AUTO_BLOCKS` blocks; never on other devices
            (:func:`.tuning.resolve_edge_block`).
        scatter_columns: each layer sums its edge messages into the nodes in column chunks of
            at most this many, one scatter each. ``None``: one scatter. ``"auto"`` (default):
            chunks of :data:`.tuning.GPU_SCATTER_COLUMNS` on GPUs, one scatter elsewhere
            (:func:`.tuning.resolve_scatter_columns`).
        qeq_solver: charge equilibration of long-range models: ``"dense"`` (Cholesky, exact),
            ``"cg"`` (matrix-free conjugate gradients to the model's ``qeq_tol``) or ``"auto"``
            (default: dense up to ``qeq_dense_max_atoms`` atom slots, CG above).
        qeq_dense_max_atoms: the ``"auto"`` threshold (atom slots of the padded batch).
        qeq_max_iter: CG iteration limit; a solve that reaches it is reported as not converged.
        dense_pairs_max_atoms: up to this many atom slots, the Coulomb operator of the
            long-range model holds its pair terms as an (N, N) matrix (one dense mat-vec per
            CG step instead of a gather and scatter over all real-space Ewald pairs, which
            outnumber N² / 2 in dense periodic systems); above it, the pair list.
        ewald_eta_factor: c in the Ewald splitting width η = max(c (V²/N)^{1/6}, √2 σ_max) of
            the long-range model's periodic structures (the textbook balance of real and
            reciprocal work is c = 1/√(2π) ≈ 0.40; QEq's many mat-vecs favour a smaller η:
            fewer real-space pairs to find and evaluate, more k-vectors, whose mat-vecs are
            dense; ``benchmarks/README.md``). The result does not depend on it beyond the
            Ewald accuracy.
        network_dtype: ``None`` (default): the networks compute in the input's dtype. ``"float32"``:
            mixed precision for float64 inputs: the NequIP networks (and their parameters) run in
            float32, the edge vectors are formed in float64 and rounded once, and the charge
            equilibration, the electrostatics and every sum of energies stay in float64. The
            network is most of the work, so a mixed call costs about what a float32 one does, while
            QEq keeps float64's accuracy (``benchmarks/README.md``, "Mixed precision").
    """

    edge_block: int | str | None = "auto"
    scatter_columns: int | str | None = "auto"
    qeq_solver: str = "auto"
    qeq_dense_max_atoms: int = 256
    qeq_max_iter: int = 500
    dense_pairs_max_atoms: int = 4096
    ewald_eta_factor: float = 0.28
    network_dtype: str | None = None

    def __post_init__(self):
        _check_size_option("edge_block", self.edge_block)
        _check_size_option("scatter_columns", self.scatter_columns)
        if not (isinstance(self.ewald_eta_factor, (int, float)) and self.ewald_eta_factor > 0):
            raise ValueError(f"ewald_eta_factor must be a positive number, got {self.ewald_eta_factor!r}")
        if self.network_dtype not in (None, "float32", "float64"):
            raise ValueError(f"network_dtype must be None, 'float32' or 'float64', got {self.network_dtype!r}")
        if self.qeq_solver not in ("auto", "dense", "cg"):
            raise ValueError(f"qeq_solver must be 'auto', 'dense' or 'cg', got {self.qeq_solver!r}")
        for name in ("qeq_dense_max_atoms", "qeq_max_iter", "dense_pairs_max_atoms"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")

    def network_dtype_for(self, dtype):
        """The dtype the networks compute in for inputs of ``dtype``."""
        import numpy as np

        return np.dtype(dtype) if self.network_dtype is None else np.dtype(self.network_dtype)

    def qeq_method(self, n_atoms: int) -> str:
        """The QEq solver for a batch of ``n_atoms`` atom slots: ``qeq_solver``, where
        ``"auto"`` is dense Cholesky up to ``qeq_dense_max_atoms`` and CG above."""
        if self.qeq_solver != "auto":
            return self.qeq_solver
        return "dense" if n_atoms <= self.qeq_dense_max_atoms else "cg"
