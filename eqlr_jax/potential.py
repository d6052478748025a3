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
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .graph import Capacity, Graph, build_graph
from .nn import NequIP, NequIPConfig
from .nn.nequip import initial_scale_shift
from .runtime import Runtime
from .structure import Structure

__all__ = ["Potential", "predict", "trace_count"]

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


def _cast_params(params, dtype):
    return jax.tree_util.tree_map(
        lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)


def node_energies(config: NequIPConfig, params, graph: Graph, positions=None, cell=None,
                  runtime: Runtime = Runtime()) -> jax.Array:
    """(N,) per-atom energies in eV (0 on padded nodes). Pure; differentiable in positions/cell."""
    return _node_energies(config, params, graph, graph.edge_vectors(positions, cell), runtime)


def _node_energies(config: NequIPConfig, params, graph: Graph, vec: jax.Array, runtime: Runtime) -> jax.Array:
    """:func:`node_energies` from the (E, 3) edge vectors, Å."""
    params = _cast_params(params, vec.dtype)
    out, _ = NequIP(config, runtime).apply(params, vec, graph.species, graph.senders, graph.receivers,
                                           graph.edge_mask)
    return jnp.where(graph.node_mask, out[:, 0], 0.0)


@functools.partial(jax.jit, static_argnames=("config", "compute_stress", "runtime"))
def predict(config: NequIPConfig, params, graph: Graph, compute_stress: bool = True,
            runtime: Runtime = Runtime()) -> dict[str, jax.Array]:
    """Energies, forces and (optionally) stress of every structure in a padded graph.

    ``runtime``: speed and memory options (:class:`eqlr_jax.Runtime`; static, results the same
    up to rounding).

    Returns a dict with
        ``energy`` (G,) eV, ``node_energies`` (N,) eV, ``forces`` (N, 3) eV/Å, and if
        ``compute_stress``: ``virial`` (G, 3, 3) eV and ``stress`` (G, 3, 3) eV/Å^3
        (zero for structures that are not 3-D periodic). Padded entries are zero.
    """
    _TRACES["predict"] += 1
    with _gc_paused():  # the body runs only while jax traces it
        return _predict(config, params, graph, compute_stress, runtime)


def _predict(config: NequIPConfig, params, graph: Graph, compute_stress: bool,
             runtime: Runtime) -> dict[str, jax.Array]:
    """The energy depends on positions and cell only through the edge vectors
    r_e = x_sender - x_receiver + shift_e . cell, so one gradient g_e = dE/dr_e gives both:
    dE/dx_i = sum_{e: sender i} g_e - sum_{e: receiver i} g_e, and, for the strain x' = x (1 + eps)
    (r' = r (1 + eps)), dE/deps_ab = sum_e r_e,a g_e,b over the structure's edges."""
    G, N = graph.n_graph_capacity, graph.n_node_capacity
    dtype = graph.positions.dtype
    vec = graph.edge_vectors()

    def total(v):
        e_node = _node_energies(config, params, graph, v, runtime)
        e_graph = jax.ops.segment_sum(e_node, graph.node_graph, num_segments=G)
        return jnp.sum(e_graph), (e_graph, e_node)

    (_, (e_graph, e_node)), g = jax.value_and_grad(total, has_aux=True)(vec)
    dpos = (jax.ops.segment_sum(g, graph.senders, num_segments=N)
            - jax.ops.segment_sum(g, graph.receivers, num_segments=N, indices_are_sorted=True))
    out = {"energy": jnp.where(graph.graph_mask, e_graph, 0.0), "node_energies": e_node,
           "forces": jnp.where(graph.node_mask[:, None], -dpos, 0.0)}
    if compute_stress:
        edge_graph = graph.node_graph[graph.receivers]
        dstrain = jax.ops.segment_sum(vec[:, :, None] * g[:, None, :], edge_graph, num_segments=G)
        dstrain = 0.5 * (dstrain + jnp.swapaxes(dstrain, -1, -2))
        periodic = jnp.all(graph.pbc, axis=-1) & graph.graph_mask
        eye = jnp.eye(3, dtype=dtype)
        vol = jnp.abs(jnp.linalg.det(jnp.where(periodic[:, None, None], graph.cell, eye)))
        out["virial"] = jnp.where(graph.graph_mask[:, None, None], -dstrain, 0.0)
        out["stress"] = jnp.where(periodic[:, None, None], dstrain / vol[:, None, None], 0.0)
    return out


@dataclasses.dataclass(frozen=True)
class Potential:
    """A short-range NequIP potential: configuration plus parameters.

    Build one with :meth:`Potential.init`, load one with :func:`eqlr_jax.load`. ``runtime``
    (:class:`eqlr_jax.Runtime`, not saved): speed and memory options of its calls, e.g.
    ``dataclasses.replace(pot, runtime=Runtime(edge_block=None))``.
    """

    config: NequIPConfig
    params: Any
    runtime: Runtime = Runtime()

    @classmethod
    def init(cls, config: NequIPConfig, seed: int = 0, dtype=jnp.float32) -> "Potential":
        """Randomly initialised parameters, stored in ``dtype`` (computation follows the input).

        The parameter tree is the network's (``NequIP(config).init``, traced, not compiled);
        every weight is drawn from N(0, 1), as the network's own initialisers draw them (e3nn's
        normalisation is applied in the forward pass), from one NumPy stream seeded with
        ``seed``; the per-species scale and shift start at the config's values. Compiling the
        network's ``init`` instead took about 6 s at l_max 1 (a random-number kernel per weight).
        """
        vec = jnp.asarray([[1.0, 0.2, -0.3], [-1.0, -0.2, 0.3]], dtype)
        idx = jnp.asarray([0, 1], jnp.int32)
        species = jnp.zeros(2, jnp.int32)
        inputs = None if config.n_node_inputs == 0 else jnp.zeros((2, config.n_node_inputs), dtype)
        tree = jax.eval_shape(NequIP(config).init, jax.random.PRNGKey(seed), vec, species, idx[::-1], idx,
                              jnp.ones(2, bool), inputs)
        rng = np.random.default_rng(seed)
        fixed = dict(zip(("species_scale", "species_shift"), initial_scale_shift(config)))

        def value(path, leaf):
            name = getattr(path[-1], "key", None)
            v = fixed[name] if name in fixed else rng.standard_normal(leaf.shape)
            return jnp.asarray(v, leaf.dtype)

        return cls(config, jax.tree_util.tree_map_with_path(value, tree))

    @property
    def cutoff(self) -> float:
        """Neighbour cutoff, Å."""
        return self.config.r_max

    @property
    def species(self) -> tuple[int, ...]:
        """Atomic numbers the model knows."""
        return self.config.species

    def num_params(self) -> int:
        return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(self.params)))

    def graph(self, structures: Structure | Sequence[Structure], capacity: Capacity | None = None,
              dtype=None) -> tuple[Graph, Capacity]:
        """Padded graph of one or more :class:`Structure` for this model (see ``build_graph``)."""
        return build_graph(structures, self.cutoff, self.species, capacity=capacity, dtype=dtype)

    def __call__(self, graph: Graph, compute_stress: bool = True) -> dict[str, jax.Array]:
        """Energy, forces and stress of every structure in ``graph`` (see :func:`predict`)."""
        with _gc_paused():  # also while a first call lowers and compiles
            return predict(self.config, self.params, graph, compute_stress=compute_stress,
                           runtime=self.runtime)

    def energy(self, graph: Graph) -> jax.Array:
        """(G,) total energies, eV."""
        return self(graph, compute_stress=False)["energy"]

    def forces(self, graph: Graph) -> jax.Array:
        """(N, 3) forces, eV/Å."""
        return self(graph, compute_stress=False)["forces"]

    def calculator(self, **kwargs):
        """An ASE calculator for this potential (see :class:`eqlr_jax.calculator.Calculator`)."""
        from .calculator import Calculator

        return Calculator(self, **kwargs)
