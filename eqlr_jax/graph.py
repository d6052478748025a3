"""The one graph contract shared by training, the ASE calculator and jax-md.

A :class:`Graph` is a pytree of arrays with static (padded) shapes. It holds one or many
structures. Padding is numerically inert:

* padded nodes have ``node_mask = False``, species 0, position 0, and belong to the last graph
  slot, which is always a dummy graph (``graph_mask = False``);
* padded edges have ``edge_mask = False`` and join the last real node to itself; the model
  replaces their vectors by a safe vector beyond the cutoff and multiplies their messages by zero;
* padded long-range pairs and k-vectors are masked the same way (``pair_mask``, ``k_mask``).

Capacities are rounded up to buckets (:func:`bucket`) so that structures of similar size share
one compiled program.

Units: positions and cell in Å, total charge in e.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .electrostatics.ewald_setup import ETA_FACTOR
from .electrostatics.flat import FlatData
from .electrostatics.flat_setup import assemble_flat_data, structure_parts
from .errors import CapacityError
from .neighbors import neighbor_list
from .structure import Structure

__all__ = ["Graph", "Capacity", "LongRangeSpec", "bucket", "build_graph", "capacity_for", "long_range_parts",
           "species_indices",
           "UnknownElementError", "CapacityError"]


class UnknownElementError(ValueError):
    """Raised when a structure contains an element the model was not built for."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Graph:
    """Padded batch of structures. Shapes: N = node capacity, E = edge capacity, G = graph capacity.

    Attributes:
        positions: (N, 3) Cartesian positions, Å.
        species: (N,) int32 index into the model's species list.
        node_graph: (N,) int32 index of the structure each node belongs to.
        node_mask: (N,) bool, True for real atoms.
        senders: (E,) int32 neighbour atom j of each edge (messages flow senders -> receivers).
        receivers: (E,) int32 centre atom i of each edge. Edges are sorted by receiver.
        shifts: (E, 3) integer image shifts S, stored in the positions' float dtype; the edge
            vector is ``positions[senders] - positions[receivers] + shifts @ cell``.
        edge_mask: (E,) bool, True for real edges.
        cell: (G, 3, 3) lattice vectors as rows, Å (zeros for open boundaries).
        pbc: (G, 3) bool.
        total_charge: (G,) net charge of each structure, e.
        graph_mask: (G,) bool, True for real structures (the last slot is always padding).
        long_range: None (short-range models), or the
            :class:`~eqlr_jax.electrostatics.FlatData` of the long-range model: all pairs of
            each open structure, the real-space Ewald pairs and k-vectors of each periodic one
            (capacities ``Capacity.n_pair`` and ``Capacity.n_kvector``).
    """

    positions: jax.Array
    species: jax.Array
    node_graph: jax.Array
    node_mask: jax.Array
    senders: jax.Array
    receivers: jax.Array
    shifts: jax.Array
    edge_mask: jax.Array
    cell: jax.Array
    pbc: jax.Array
    total_charge: jax.Array
    graph_mask: jax.Array
    long_range: FlatData | None = None

    @property
    def n_node_capacity(self) -> int:
        return self.positions.shape[-2]

    @property
    def n_edge_capacity(self) -> int:
        return self.senders.shape[-1]

    @property
    def n_graph_capacity(self) -> int:
        return self.cell.shape[-3]

    def edge_vectors(self, positions: jax.Array | None = None, cell: jax.Array | None = None) -> jax.Array:
        """(E, 3) vectors from each receiver to its (shifted) sender, Å. Differentiable in
        ``positions`` and ``cell`` (defaults: the graph's own)."""
        pos = self.positions if positions is None else positions
        cel = self.cell if cell is None else cell
        edge_cell = cel[self.node_graph[self.receivers]]  # (E, 3, 3)
        return (pos[self.senders] - pos[self.receivers]
                + jnp.einsum("ea,eab->eb", self.shifts.astype(pos.dtype), edge_cell))


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Static padded sizes of a :class:`Graph`: nodes, edges and graph slots (incl. one dummy),
    and for long-range graphs the long-range pairs and k-vectors (0 for short-range graphs)."""

    n_node: int
    n_edge: int
    n_graph: int
    n_pair: int = 0
    n_kvector: int = 0

    def fits(self, other: "Capacity") -> bool:
        return all(getattr(other, f.name) <= getattr(self, f.name) for f in dataclasses.fields(self))

    def union(self, other: "Capacity") -> "Capacity":
        return Capacity(*(max(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)))


def bucket(n: int, minimum: int = 8) -> int:
    """Round ``n`` up to the next bucket: 2^k times 1, 1.25, 1.5 or 1.75 (at least ``minimum``).

    Buckets are at most 25 % larger than ``n``, and a new structure of similar size usually
    falls in the same bucket, so it does not trigger a recompile.
    """
    n = max(int(n), minimum)
    k = max(0, math.floor(math.log2(n)) - 2)
    step = 1 << k  # quarter of the power of two below n
    return int(math.ceil(n / step) * step)


def species_indices(numbers: np.ndarray, species: Sequence[int]) -> np.ndarray:
    """Map atomic numbers to indices into the model's ``species`` (atomic numbers)."""
    from ase.data import chemical_symbols  # ase is a light, host-only dependency of this module

    lookup = {int(z): k for k, z in enumerate(species)}
    out = np.empty(len(numbers), dtype=np.int32)
    for a, z in enumerate(numbers):
        k = lookup.get(int(z))
        if k is None:
            known = ", ".join(chemical_symbols[s] for s in species)
            sym = chemical_symbols[int(z)] if 0 <= int(z) < len(chemical_symbols) else f"Z={int(z)}"
            raise UnknownElementError(
                f"element {sym} (atom {a}) is not known to this model; it knows: {known}")
        out[a] = k
    return out


def _edges(structures: Sequence[Structure], cutoff: float):
    return [neighbor_list(s, cutoff) for s in structures]


def capacity_for(n_nodes: int, n_edges: int, n_graphs: int, exact: bool = False,
                 n_pairs: int | None = None, n_kvectors: int | None = None) -> Capacity:
    """Bucketed capacity for the given totals (one extra node and graph slot for padding).

    ``n_pairs``/``n_kvectors``: long-range totals (None for a short-range graph: capacity 0).
    """
    lr = n_pairs is not None
    if exact:
        return Capacity(n_nodes + 1, max(n_edges, 1), n_graphs + 1, max(n_pairs or 0, 1) if lr else 0,
                        max(n_kvectors or 0, 1) if lr else 0)
    return Capacity(bucket(n_nodes + 1), bucket(max(n_edges, 1), 16), n_graphs + 1,
                    bucket(max(n_pairs or 0, 1), 16) if lr else 0, bucket(max(n_kvectors or 0, 1)) if lr else 0)


@dataclasses.dataclass(frozen=True)
class LongRangeSpec:
    """What :func:`build_graph` needs to add a long-range model's data to a graph.

    Attributes:
        gamma_max: per species index, the largest Gaussian pair width √2 σ_max the model's
            charges can reach, Å (it bounds the Ewald cutoffs).
        accuracy: relative accuracy ε of the Ewald sums.
        eta_factor: c in the Ewald splitting width η = c (V²/N)^{1/6} (a speed choice).
    """

    gamma_max: tuple[float, ...]
    accuracy: float = 1e-6
    eta_factor: float = ETA_FACTOR


def long_range_parts(structures: Sequence[Structure], species: Sequence[int], spec: LongRangeSpec):
    """Per structure, its long-range pairs and k-vectors (:func:`structure_parts`)."""
    parts = []
    for s in structures:
        idx = species_indices(s.numbers, species)
        parts.append(structure_parts(s.positions, s.cell, s.pbc, float(np.max(np.asarray(spec.gamma_max)[idx])),
                                     spec.accuracy, spec.eta_factor))
    return parts


def build_graph(structures: Structure | Sequence[Structure], cutoff: float, species: Sequence[int],
                capacity: Capacity | None = None, dtype=None, edges=None,
                long_range: LongRangeSpec | None = None, parts=None,
                total_charge: Sequence[float] | None = None) -> tuple[Graph, Capacity]:
    """Build one padded :class:`Graph` from one or more structures.

    Args:
        structures: a :class:`Structure` or a list of them.
        cutoff: neighbour cutoff, Å.
        species: atomic numbers known to the model, in the order of its species index.
        capacity: static sizes to pad to; default: bucketed from the actual sizes.
        dtype: float dtype of positions/cell/charges (default: jnp default float).
        edges: optional precomputed ``neighbor_list`` results, one per structure.
        long_range: add the long-range data of a long-range model (None: short-range graph).
        parts: optional precomputed :func:`long_range_parts` (with ``long_range``).
        total_charge: optional net charge of each structure, e (default: each structure's own
            ``total_charge``); one finite value per structure.

    Returns:
        (graph, needed): the graph and the bucketed capacity this batch needs
        (callers that keep a capacity grow it to ``capacity.union(needed)``).

    Raises:
        CapacityError: if the batch does not fit ``capacity``.
        UnknownElementError: for an element not in ``species``.
    """
    if isinstance(structures, Structure):
        structures = [structures]
    structures = list(structures)
    if not structures:
        raise ValueError("build_graph needs at least one structure")
    if total_charge is not None:
        tq_in = np.asarray(total_charge, dtype=np.float64).reshape(-1)
        if tq_in.shape != (len(structures),) or not np.all(np.isfinite(tq_in)):
            raise ValueError(f"total_charge needs one finite value (e) per structure: {len(structures)} "
                             f"structures, got {np.shape(total_charge)} {np.asarray(total_charge).tolist()}")
        structures = [dataclasses.replace(s, total_charge=float(q)) for s, q in zip(structures, tq_in)]
    if edges is None:
        edges = _edges(structures, cutoff)
    n_nodes = sum(s.n_atoms for s in structures)
    n_edges = sum(len(e[0]) for e in edges)
    n_pairs = n_kvectors = None
    if long_range is not None:
        if parts is None:
            parts = long_range_parts(structures, species, long_range)
        n_pairs = sum(len(p.i) for p in parts)
        n_kvectors = sum(len(p.miller) for p in parts)
    needed = capacity_for(n_nodes, n_edges, len(structures), n_pairs=n_pairs, n_kvectors=n_kvectors)
    if capacity is None:
        capacity = needed
    elif not capacity.fits(capacity_for(n_nodes, n_edges, len(structures), exact=True, n_pairs=n_pairs,
                                        n_kvectors=n_kvectors)) or (long_range is not None and capacity.n_pair == 0):
        raise CapacityError(
            f"batch needs {n_nodes} nodes (+1 padding), {n_edges} edges, {len(structures)} graphs "
            f"(+1 padding)" + ("" if long_range is None else f", {n_pairs} long-range pairs and "
                               f"{n_kvectors} k-vectors") + f"; capacity is {capacity}")
    N, E, G = capacity.n_node, capacity.n_edge, capacity.n_graph
    fdtype = np.dtype(dtype) if dtype is not None else np.dtype(jnp.zeros(()).dtype)

    pos = np.zeros((N, 3), fdtype)
    spc = np.zeros(N, np.int32)
    ngr = np.full(N, G - 1, np.int32)
    nmask = np.zeros(N, bool)
    snd = np.zeros(E, np.int32)
    rcv = np.zeros(E, np.int32)
    shf = np.zeros((E, 3), fdtype)
    emask = np.zeros(E, bool)
    cell = np.zeros((G, 3, 3), fdtype)
    pbc = np.zeros((G, 3), bool)
    tq = np.zeros(G, fdtype)
    gmask = np.zeros(G, bool)

    n0 = e0 = 0
    for g, (s, (i, j, S, _)) in enumerate(zip(structures, edges)):
        n, e = s.n_atoms, len(i)
        pos[n0:n0 + n] = s.positions
        spc[n0:n0 + n] = species_indices(s.numbers, species)
        ngr[n0:n0 + n] = g
        nmask[n0:n0 + n] = True
        rcv[e0:e0 + e] = i + n0
        snd[e0:e0 + e] = j + n0
        shf[e0:e0 + e] = S
        emask[e0:e0 + e] = True
        cell[g] = s.cell
        pbc[g] = s.pbc
        tq[g] = s.total_charge
        gmask[g] = True
        n0 += n
        e0 += e
    # padded edges: node (n0 - 1) to itself keeps receivers sorted; they are masked anyway
    rcv[e0:] = n0 - 1
    snd[e0:] = n0 - 1
    lr = None
    if long_range is not None:
        offsets = np.cumsum([0] + [s.n_atoms for s in structures[:-1]])
        lr = jax.tree_util.tree_map(jnp.asarray, assemble_flat_data(parts, offsets, capacity.n_pair,
                                                                    capacity.n_kvector, G, fdtype))
    graph = Graph(positions=jnp.asarray(pos), species=jnp.asarray(spc), node_graph=jnp.asarray(ngr),
                  node_mask=jnp.asarray(nmask), senders=jnp.asarray(snd), receivers=jnp.asarray(rcv),
                  shifts=jnp.asarray(shf), edge_mask=jnp.asarray(emask), cell=jnp.asarray(cell),
                  pbc=jnp.asarray(pbc), total_charge=jnp.asarray(tq), graph_mask=jnp.asarray(gmask),
                  long_range=lr)
    return graph, needed
