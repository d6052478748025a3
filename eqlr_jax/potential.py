"""The potential: a frozen (config, params) pair with pure, jit-compiled energy/forces/stress.

Units: energy eV, forces eV/Å, stress eV/Å^3 with ASE's sign (positive = tensile,
``stress = (1/V) dE/d(strain)``), virial eV.

Precision is the caller's choice: pass a graph in float32 or float64 (the latter needs
``jax.config.update("jax_enable_x64", True)`` set by the caller); parameters are cast to the
graph's dtype inside the computation. The library never flips ``jax_enable_x64``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .graph import Capacity, Graph, build_graph
from .models import init_params, is_long_range, long_range_spec, lr_terms, short_range_parts, sr_node_energies
from .models.sr import cast_params as _cast_params  # noqa: F401  (benchmarks use it)
from .qeq import QEqConvergenceError
from .runtime import Runtime
from .structure import Structure

__all__ = ["Potential", "energy_terms", "predict", "trace_count"]

_TRACES = {"predict": 0}


def trace_count() -> int:
    """Number of times :func:`predict` has been traced (compiled) in this process."""
    return _TRACES["predict"]


@contextlib.contextmanager
def _gc_paused():
    """Python's cyclic garbage collector off for the duration (then back to its previous state).

    Tracing the network creates millions of short-lived Python objects, and the collector's
    full passes over them took 0.4-0.7 s of the 1.3-1.9 s trace of the 1000-atom race call.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def energy_terms(config, params, graph: Graph, positions=None, cell=None, runtime: Runtime = Runtime(),
                 guess=None) -> dict[str, jax.Array]:
    """The energy of every structure of ``graph`` as a pure function of ``positions`` (N, 3) Å
    and ``cell`` (G, 3, 3) Å (defaults: the graph's own), differentiable in both.

    Returns ``energy`` (G,) and ``node_energies`` (N,), eV; long-range models add the other
    outputs of :func:`~eqlr_jax.models.lr_terms` (charges, energy_short, energy_elec, the QEq
    residual, ...), with ``guess`` (N,) e as the start of an iterative QEq solve.
    """
    pos = graph.positions if positions is None else positions
    cel = graph.cell if cell is None else cell
    vec = graph.edge_vectors(pos, cel)
    if is_long_range(config):
        return lr_terms(config, params, graph, vec, pos, cel, runtime, guess)
    e_node = sr_node_energies(*short_range_parts(config, params), graph, vec, runtime)
    return {"energy": jax.ops.segment_sum(e_node, graph.node_graph, num_segments=graph.n_graph_capacity),
            "node_energies": e_node}


def node_energies(config, params, graph: Graph, positions=None, cell=None,
                  runtime: Runtime = Runtime()) -> jax.Array:
    """(N,) per-atom energies in eV (0 on padded nodes). Pure; differentiable in positions/cell."""
    return energy_terms(config, params, graph, positions, cell, runtime)["node_energies"]


@functools.partial(jax.jit, static_argnames=("config", "compute_stress", "runtime"))
def predict(config, params, graph: Graph, compute_stress: bool = True, runtime: Runtime = Runtime(),
            charges_guess=None) -> dict[str, jax.Array]:
    """Energies, forces and (optionally) stress of every structure in a padded graph.

    ``config``: a :class:`~eqlr_jax.NequIPConfig` or :class:`~eqlr_jax.LRConfig` (static).
    ``runtime``: speed and memory options (:class:`eqlr_jax.Runtime`; static, results the same
    up to rounding). ``charges_guess``: optional (N,) e, the start of an iterative QEq solve
    (long-range models; e.g. the previous MD step's charges).

    Returns a dict with
        ``energy`` (G,) eV, ``node_energies`` (N,) eV, ``forces`` (N, 3) eV/Å, and if
        ``compute_stress``: ``virial`` (G, 3, 3) eV and ``stress`` (G, 3, 3) eV/Å^3
        (zero for structures that are not 3-D periodic). Padded entries are zero.
        Long-range models add ``charges`` (N,) e, ``chi`` (N,) eV/e, ``energy_short``,
        ``energy_elec`` (the Coulomb energy of the charges) and ``energy_qeq`` (E_elec +
        Σ(χq + ½Jq²)), each (G,) eV, ``dipole`` (G, 3) e·Å (Σ q_i r_i, for structures with no
        periodic axis, else 0), ``qeq_residual`` () eV/e, ``qeq_iterations`` () and
        ``qeq_converged`` () bool.
    """
    _TRACES["predict"] += 1
    with _gc_paused():  # the body runs only while jax traces it
        if is_long_range(config):
            return _predict_lr(config, params, graph, compute_stress, runtime, charges_guess)
        return _predict(config, params, graph, compute_stress, runtime)


def _stress(graph: Graph, dstrain, out):
    """virial and stress from dE/d(strain) (G, 3, 3) into ``out``."""
    dstrain = 0.5 * (dstrain + jnp.swapaxes(dstrain, -1, -2))
    periodic = jnp.all(graph.pbc, axis=-1) & graph.graph_mask
    eye = jnp.eye(3, dtype=dstrain.dtype)
    vol = jnp.abs(jnp.linalg.det(jnp.where(periodic[:, None, None], graph.cell, eye)))
    out["virial"] = jnp.where(graph.graph_mask[:, None, None], -dstrain, 0.0)
    out["stress"] = jnp.where(periodic[:, None, None], dstrain / vol[:, None, None], 0.0)


def _predict(config, params, graph: Graph, compute_stress: bool, runtime: Runtime) -> dict[str, jax.Array]:
    """The energy depends on positions and cell only through the edge vectors
    r_e = x_sender - x_receiver + shift_e . cell, so one gradient g_e = dE/dr_e gives both:
    dE/dx_i = sum_{e: sender i} g_e - sum_{e: receiver i} g_e, and, for the strain x' = x (1 + eps)
    (r' = r (1 + eps)), dE/deps_ab = sum_e r_e,a g_e,b over the structure's edges."""
    G, N = graph.n_graph_capacity, graph.n_node_capacity
    net_config, net_params = short_range_parts(config, params)
    vec = graph.edge_vectors()

    def total(v):
        e_node = sr_node_energies(net_config, net_params, graph, v, runtime)
        e_graph = jax.ops.segment_sum(e_node, graph.node_graph, num_segments=G)
        return jnp.sum(e_graph), (e_graph, e_node)

    (_, (e_graph, e_node)), g = jax.value_and_grad(total, has_aux=True)(vec)
    dpos = (jax.ops.segment_sum(g, graph.senders, num_segments=N)
            - jax.ops.segment_sum(g, graph.receivers, num_segments=N, indices_are_sorted=True))
    out = {"energy": jnp.where(graph.graph_mask, e_graph, 0.0), "node_energies": e_node,
           "forces": jnp.where(graph.node_mask[:, None], -dpos, 0.0)}
    if compute_stress:
        edge_graph = graph.node_graph[graph.receivers]
        _stress(graph, jax.ops.segment_sum(vec[:, :, None] * g[:, None, :], edge_graph, num_segments=G), out)
    return out


def _predict_lr(config, params, graph: Graph, compute_stress: bool, runtime: Runtime, guess):
    """The long-range energy depends on positions and cell through the edge vectors and, in the
    electrostatics, directly: dE/dx_i = (edge part, as in :func:`_predict`) + ∂E/∂x_i, and for the
    strain x' = x (1 + eps), cell' = cell (1 + eps): dE/deps = sum_e r_e g_e + sum_i x_i ∂E/∂x_i
    + cellᵀ ∂E/∂cell."""
    G, N = graph.n_graph_capacity, graph.n_node_capacity
    vec = graph.edge_vectors()

    def total(v, pos, cell):
        terms = lr_terms(config, params, graph, v, pos, cell, runtime, guess)
        return jnp.sum(jnp.where(graph.graph_mask, terms["energy"], 0.0)), terms

    (_, t), (g, gpos, gcell) = jax.value_and_grad(total, argnums=(0, 1, 2), has_aux=True)(
        vec, graph.positions, graph.cell)
    dpos = (jax.ops.segment_sum(g, graph.senders, num_segments=N)
            - jax.ops.segment_sum(g, graph.receivers, num_segments=N, indices_are_sorted=True) + gpos)
    node = graph.node_mask
    open_ = ~jnp.any(graph.pbc, axis=-1) & graph.graph_mask
    dipole = jax.ops.segment_sum(t["charges"][:, None] * graph.positions, graph.node_graph, num_segments=G)
    per_graph = ("energy", "energy_short", "energy_elec", "energy_qeq")
    out = {k: jnp.where(graph.graph_mask, t[k], 0.0) for k in per_graph}
    out.update({k: t[k] for k in ("node_energies", "charges", "chi", "qeq_residual", "qeq_iterations",
                                  "qeq_converged")})
    out["forces"] = jnp.where(node[:, None], -dpos, 0.0)
    out["dipole"] = jnp.where(open_[:, None], dipole, 0.0)
    if compute_stress:
        edge_graph = graph.node_graph[graph.receivers]
        dstrain = jax.ops.segment_sum(vec[:, :, None] * g[:, None, :], edge_graph, num_segments=G)
        dstrain = dstrain + jax.ops.segment_sum(graph.positions[:, :, None] * gpos[:, None, :],
                                                graph.node_graph, num_segments=G)
        _stress(graph, dstrain + jnp.einsum("gca,gcb->gab", graph.cell, gcell), out)
    return out


@dataclasses.dataclass(frozen=True)
class Potential:
    """A potential: configuration plus parameters.

    ``config`` is a :class:`~eqlr_jax.NequIPConfig` (short range) or a
    :class:`~eqlr_jax.LRConfig` (NequIP-LR: charges by QEq, electrostatics, total charge as
    input). Build one with :meth:`Potential.init`, load one with :func:`eqlr_jax.load`.
    ``runtime`` (:class:`eqlr_jax.Runtime`, not saved): speed and memory options of its calls,
    e.g. ``dataclasses.replace(pot, runtime=Runtime(edge_block=None))``.
    """

    config: Any
    params: Any
    runtime: Runtime = Runtime()

    @classmethod
    def init(cls, config, seed: int = 0, dtype=jnp.float32) -> "Potential":
        """Randomly initialised parameters, stored in ``dtype`` (computation follows the input).

        Network weights are drawn from N(0, 1), as the network's own initialisers draw them
        (e3nn's normalisation is applied in the forward pass), from one NumPy stream seeded with
        ``seed``; per-species scales, shifts, hardness and χ offsets start at the config's values.
        """
        return cls(config, init_params(config, seed, dtype))

    @property
    def cutoff(self) -> float:
        """Neighbour cutoff, Å."""
        return self.config.r_max

    @property
    def species(self) -> tuple[int, ...]:
        """Atomic numbers the model knows."""
        return self.config.species

    @property
    def long_range(self) -> bool:
        """True if the model has charges and electrostatics (takes the total charge as input)."""
        return is_long_range(self.config)

    def num_params(self) -> int:
        return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(self.params)))

    def graph(self, structures: Structure | Sequence[Structure], capacity: Capacity | None = None,
              dtype=None, total_charge: Sequence[float] | None = None) -> tuple[Graph, Capacity]:
        """Padded graph of one or more :class:`Structure` for this model (see ``build_graph``);
        with the long-range data when the model has long range. ``total_charge``: optional
        net charges (e), one per structure, instead of the structures' own."""
        return build_graph(structures, self.cutoff, self.species, capacity=capacity, dtype=dtype,
                           long_range=long_range_spec(self.config, self.runtime), total_charge=total_charge)

    def __call__(self, graph: Graph, compute_stress: bool = True, charges_guess=None) -> dict[str, jax.Array]:
        """Energy, forces and stress (and for long-range models charges etc.) of every structure in
        ``graph`` (see :func:`predict`).

        Raises:
            QEqConvergenceError: the iterative charge equilibration stopped at its iteration
                limit (``Runtime.qeq_max_iter``) before reaching the model's ``qeq_tol``.

        A short-range model ignores the total charge; it warns once if a graph holds a non-zero one.
        """
        if not self.long_range:
            _warn_if_charged(graph)
        else:
            _check_total_charge(graph)
        with _gc_paused():  # also while a first call lowers and compiles
            out = predict(self.config, self.params, graph, compute_stress=compute_stress, runtime=self.runtime,
                          charges_guess=charges_guess)
        if self.long_range and not isinstance(out["qeq_converged"], jax.core.Tracer) \
                and not bool(out["qeq_converged"]):
            raise QEqConvergenceError(
                f"charge equilibration did not converge: residual {float(out['qeq_residual']):.3g} eV/e after "
                f"{int(out['qeq_iterations'])} CG iterations; raise Runtime(qeq_max_iter=...) or use "
                "Runtime(qeq_solver='dense')")
        return out

    def terms(self, graph: Graph, positions=None, cell=None, charges_guess=None) -> dict[str, jax.Array]:
        """:func:`energy_terms` of this potential: pure (no checks, no jit of its own), for
        callers that differentiate it themselves (``eqlr_jax.jax_md``)."""
        return energy_terms(self.config, self.params, graph, positions, cell, self.runtime, charges_guess)

    def energy(self, graph: Graph) -> jax.Array:
        """(G,) total energies, eV."""
        return self(graph, compute_stress=False)["energy"]

    def forces(self, graph: Graph) -> jax.Array:
        """(N, 3) forces, eV/Å."""
        return self(graph, compute_stress=False)["forces"]

    def calculator(self, **kwargs):
        """An ASE calculator for this potential (:class:`eqlr_jax.Calculator`; ASE is imported
        only when this is called)."""
        from .calculator import Calculator

        return Calculator(self, **kwargs)


def _check_total_charge(graph: Graph) -> None:
    """A long-range graph must hold one total charge per structure slot, 0 on padding slots."""
    tq = graph.total_charge
    if tq.shape != graph.graph_mask.shape:
        raise ValueError(f"graph.total_charge has shape {tq.shape}, but the graph has "
                         f"{graph.graph_mask.shape[0]} structure slots: one total charge (e) per slot")
    if isinstance(tq, jax.core.Tracer):
        return
    tq, real = np.asarray(tq), np.asarray(graph.graph_mask)
    if not np.all(np.isfinite(tq)):
        raise ValueError("graph.total_charge contains NaN or inf")
    if np.any(tq[~real] != 0):
        raise ValueError("graph.total_charge is non-zero on a padding slot (graph_mask False): the charges of a "
                         "batch do not match its structures")


_WARNED = {"charged_sr": False}


def _warn_if_charged(graph: Graph) -> None:
    """Warn (once per process) when a short-range model is given a charged structure."""
    if _WARNED["charged_sr"] or isinstance(graph.total_charge, jax.core.Tracer):
        return
    if np.any(np.asarray(graph.total_charge) != 0):
        _WARNED["charged_sr"] = True
        warnings.warn("a short-range model ignores the total charge: a structure with a non-zero total "
                      "charge is treated as neutral (use a long-range model, eqlr_jax.LRConfig, to make the "
                      "energy depend on it). This warning is shown once.", stacklevel=3)
