"""Padded training batches: cached neighbour lists, a few bucketed capacities, reference targets.

Every frame's neighbour list (and long-range pairs and k-vectors) is computed once. A batch is
padded to the smallest capacity of a short *plan* that fits it, so an epoch compiles the
training step at most ``len(plan)`` times, whatever the shuffling.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..graph import Capacity, Graph, LongRangeSpec, build_graph, capacity_for, long_range_parts, species_indices
from ..neighbors import neighbor_list
from .data import Frame

__all__ = ["Targets", "BatchMaker"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Targets:
    """Reference values of a padded batch; masks are False where a reference is missing or padded.

    Shapes: G structure slots, N atom slots. Units: eV, eV/Å, eV/Å³, e, e·Å.
    """

    energy: jax.Array         # (G,)
    energy_mask: jax.Array    # (G,)
    n_atoms: jax.Array        # (G,) atoms per structure (1 on padding slots)
    forces: jax.Array         # (N, 3)
    forces_mask: jax.Array    # (N,)
    stress: jax.Array         # (G, 3, 3)
    stress_mask: jax.Array    # (G,)
    charges: jax.Array        # (N,)
    charges_mask: jax.Array   # (N,)
    dipole: jax.Array         # (G, 3)
    dipole_mask: jax.Array    # (G,)


class BatchMaker:
    """Batches of one split of a dataset, for a model of the given cutoff and species.

    Args:
        frames: the split's frames.
        cutoff: the model's r_max, Å. species: its atomic numbers.
        long_range: the model's :class:`~eqlr_jax.graph.LongRangeSpec` (None for short range).
        batch_size: structures per batch. dtype: float dtype of the graphs.
        levels: number of capacities in the plan (compiles per epoch, at most).
    """

    def __init__(self, frames: Sequence[Frame], cutoff: float, species: Sequence[int],
                 long_range: LongRangeSpec | None, batch_size: int, dtype, levels: int = 3, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.frames = list(frames)
        self.cutoff, self.species, self.long_range = cutoff, tuple(species), long_range
        self.batch_size = min(batch_size, len(self.frames))
        self.dtype = np.dtype(dtype)
        self.edges = []
        for f in self.frames:
            try:
                species_indices(f.structure.numbers, self.species)
                self.edges.append(neighbor_list(f.structure, cutoff))
            except ValueError as e:  # unknown element, overlapping atoms: name the frame
                raise type(e)(f"{f.source}: {e}") from e
        self.parts = None
        if long_range is not None:
            self.parts = [long_range_parts([f.structure], self.species, long_range)[0] for f in self.frames]
        lr = self.parts is not None
        self.sizes = np.array([[f.n_atoms, len(e[0]), len(p.i) if lr else 0, len(p.miller) if lr else 0]
                               for f, e, p in zip(self.frames, self.edges, self.parts or [None] * len(self.frames))])
        self.plan = self._plan(levels, np.random.default_rng(seed))

    def _capacity(self, totals) -> Capacity:
        lr = self.parts is not None
        return capacity_for(int(totals[0]), int(totals[1]), self.batch_size, n_pairs=int(totals[2]) if lr else None,
                            n_kvectors=int(totals[3]) if lr else None)

    def _plan(self, levels: int, rng) -> list[Capacity]:
        """Capacities from small to large; the largest fits any batch (the batch_size largest
        frames in each dimension), the others fit quantiles of sampled random batches."""
        top = np.sort(self.sizes, axis=0)[::-1][:self.batch_size].sum(axis=0)
        plan = [self._capacity(top)]
        if levels > 1 and len(self.frames) > self.batch_size:
            samples = np.array([self.sizes[rng.choice(len(self.frames), self.batch_size, replace=False)].sum(0)
                                for _ in range(128)])
            for qt in np.linspace(0.5, 0.95, levels - 1):
                plan.append(self._capacity(np.quantile(samples, qt, axis=0)))
        unique = sorted(set(plan), key=lambda c: (c.n_node, c.n_edge, c.n_pair, c.n_kvector))
        return unique

    def batches(self, order: np.ndarray) -> list[np.ndarray]:
        """Index arrays of consecutive batches of ``order`` (the last may be smaller)."""
        return [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]

    def capacity(self, idx) -> Capacity:
        lr = self.parts is not None
        t = self.sizes[idx].sum(axis=0)
        need = capacity_for(int(t[0]), int(t[1]), self.batch_size, exact=True,
                            n_pairs=int(t[2]) if lr else None, n_kvectors=int(t[3]) if lr else None)
        for c in self.plan:
            if c.fits(need):
                return c
        return self.plan[-1]

    def make(self, idx, capacity: Capacity | None = None) -> tuple[Graph, Targets]:
        """The padded graph and targets of frames ``idx`` (at ``capacity``, a plan entry that fits,
        or the smallest one that does)."""
        idx = [int(i) for i in idx]
        frames = [self.frames[i] for i in idx]
        cap = self.capacity(idx) if capacity is None else capacity
        graph, _ = build_graph([f.structure for f in frames], self.cutoff, self.species, capacity=cap,
                               dtype=self.dtype, edges=[self.edges[i] for i in idx], long_range=self.long_range,
                               parts=None if self.parts is None else [self.parts[i] for i in idx])
        return graph, self._targets(frames, cap)

    def _targets(self, frames, cap: Capacity) -> Targets:
        G, N, dt = cap.n_graph, cap.n_node, self.dtype
        e, em, na = np.zeros(G, dt), np.zeros(G, bool), np.ones(G, dt)
        f, fm = np.zeros((N, 3), dt), np.zeros(N, bool)
        s, sm = np.zeros((G, 3, 3), dt), np.zeros(G, bool)
        q, qm = np.zeros(N, dt), np.zeros(N, bool)
        d, dm = np.zeros((G, 3), dt), np.zeros(G, bool)
        n0 = 0
        for g, fr in enumerate(frames):
            n = fr.n_atoms
            na[g] = n
            if fr.energy is not None:
                e[g], em[g] = fr.energy, True
            if fr.forces is not None:
                f[n0:n0 + n], fm[n0:n0 + n] = fr.forces, True
            if fr.stress is not None:
                s[g], sm[g] = fr.stress, True
            if fr.charges is not None:
                q[n0:n0 + n], qm[n0:n0 + n] = fr.charges, True
            if fr.dipole is not None and not fr.structure.pbc.any():
                d[g], dm[g] = fr.dipole, True
            n0 += n
        arrays = dict(energy=e, energy_mask=em, n_atoms=na, forces=f, forces_mask=fm, stress=s, stress_mask=sm,
                      charges=q, charges_mask=qm, dipole=d, dipole_mask=dm)
        return Targets(**{k: jnp.asarray(v) for k, v in arrays.items()})
