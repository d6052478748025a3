"""jax-md integration: an eqlr_jax potential as a jax-md energy function, with its neighbour lists.

::

    from jax_md import space, simulate
    from eqlr_jax.jax_md import potential_neighbor_list

    box = atoms.cell.array.T                      # jax-md: lattice vectors as columns
    displacement_fn, shift_fn = space.periodic_general(box, fractional_coordinates=True)
    neighbor_fn, energy_fn = potential_neighbor_list(displacement_fn, box, pot, atoms.numbers,
                                                     total_charge=0.0, fractional_coordinates=True)
    R = atoms.get_scaled_positions()
    nbrs = neighbor_fn.allocate(R)
    init_fn, apply_fn = simulate.nve(energy_fn, shift_fn, dt)
    state = init_fn(key, R, mass=masses, neighbor=nbrs)
    state = apply_fn(state, neighbor=nbrs); nbrs = nbrs.update(state.position)
    assert not nbrs.did_buffer_overflow              # else: nbrs = neighbor_fn.allocate(...), redo

``energy_fn(R, neighbor, **kwargs)`` is the total energy in eV. It builds, inside jit, the same
:class:`~eqlr_jax.graph.Graph` the model sees from ASE and training and evaluates the model on it
(:meth:`Potential.terms`), so its forces and stress equal the ASE calculator's. It honours
``box=`` (the cell: NPT) and ``perturbation=`` (a strain of all coordinates and of the cell:
``jax_md.quantity.stress``/``pressure``; jax-md's stress is minus ASE's), and
``charges_guess=`` (N,) e, the start of an iterative QEq solve (:func:`qeq_integrator` carries it).

Design choices (see also the README, "Molecular dynamics"):

* **Neighbour lists.** jax-md's ``partition.neighbor_list`` uses the minimum image and silently
  drops neighbours when the cutoff exceeds half the cell. This module has its own jit-able
  multi-image list instead (the algorithm of ``jax_md.custom_partition.neighbor_list_multi_image``:
  every atom pair under every lattice translation of a stencil sized from the cell heights),
  because the model also needs (a) edges sorted by receiver, (b) a *half* list for the Ewald
  real-space pairs, (c) lists that survive atoms being wrapped back into the box: each list
  keeps the fractional reference positions it was built from, and the energy corrects an edge's
  integer shift by the atoms' wrap counts round(u − u_ref), so a wrapped atom does not force a
  rebuild, and (d) one overflow flag for both lists, the stencil, the bins and the k-vector set.
  A rebuild enumerates N² pairs by minimum image where that is exact (cutoff + skin below half
  of every cell height), else S·N² under the S translations of the stencil; in 3-D periodic
  cells at least three times cutoff + skin across, only the pairs of adjacent bins of a grid
  (a cell list, O(N); ``cell_list=``) (``eqlr_jax.jit_lists``).
  At each evaluation the entries within the cutoffs are compacted into smaller fixed
  capacities, so the model does no work on the skin (``edges_ok`` reports whether they fit;
  ``update`` folds it into ``did_buffer_overflow``). With the skin ``dr_threshold`` (default 0.5 Å),
  ``update`` rebuilds only once the pair distances may have changed by half the skin
  (2 max |displacement| + cell deformation ≥ dr_threshold / 2), so a list stays complete for as
  much motion again after its last update; ``terms_fn`` checks at every evaluation that the full
  skin is not used up (``neighbors_ok``), so a force is never computed from an incomplete list.
* **Two lists.** The network's edges (full list, cutoff ``r_max``) and, for long-range models,
  the Ewald real-space pairs (half list, the Ewald cutoff) of periodic cells; an open structure
  (``box=None``) takes every pair once (built on the host). Both live in one
  :class:`NeighborList` pytree with ``did_buffer_overflow`` and ``update``.
* **k-vectors.** The Ewald splitting width η, the real-space cutoff and k_cut are chosen once,
  on the host, from the initial box (as the ASE path does for that box); they stay valid for
  any cell. The Miller indices are a FIXED list per allocation, all n with |k(n)| ≤
  (1 + ``kvector_margin``) k_cut for the allocation's cell, with no |k| mask inside jit: the
  energy is smooth in the cell. It still covers every k within k_cut while the cell's linear
  stretch σ_max(C_alloc⁻¹ C) ≤ 1 + margin (or more, for lists that also cover another cell: see
  ``allocate(..., cover=...)``); beyond that ``did_buffer_overflow`` is set and
  ``allocate(R, box=...)`` picks a new list. Terms beyond k_cut are below the Ewald accuracy,
  so a new list changes the energy only at that level.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .electrostatics.ewald_setup import miller_indices
from .electrostatics.flat import FlatData
from .electrostatics.flat_setup import ewald_parameters
from .graph import Graph, species_indices
from .jit_lists import (
    Edges,
    NeighborFns,
    NeighborList,
    at_least,
    bins_mode,
    build_edges,
    candidates,
    compact,
    image_reach,
    list_mode,
    merge_modes,
    mode_overflows,
)
from .models import long_range_spec

__all__ = ["potential_neighbor_list", "md_functions", "MDFunctions", "NeighborList", "NeighborFns",
           "qeq_integrator", "QEqState", "trace_count", "with_extra_energy"]

_TRACES = {"terms": 0}

#: keyword arguments of :func:`potential_neighbor_list` beyond the named ones, with defaults
NEIGHBOR_DEFAULTS = {"dr_threshold": 0.5, "capacity_multiplier": 1.25, "pbc": None, "kvector_margin": 0.05,
                     "cell_list": "auto"}


def trace_count() -> int:
    """Times an energy function of this module has been traced (compiled) in this process."""
    return _TRACES["terms"]


# ---------------------------------------------------------------------------------------------
# the energy function


class MDFunctions(NamedTuple):
    """What :func:`md_functions` returns.

    Attributes:
        neighbor_fn: :class:`NeighborFns`.
        energy_fn: ``energy_fn(R, neighbor, **kwargs)`` -> () total energy, eV.
        terms_fn: ``terms_fn(R, neighbor, **kwargs)`` -> dict of () ``energy``, ``energy_short``,
            ``energy_elec`` (eV), ``charges`` (N,) e, ``total_charge`` () e, ``qeq_residual`` ()
            eV/e, ``qeq_iterations`` (), ``neighbors_ok`` () bool (the list is still complete
            at R) and ``edges_ok`` () bool (the entries within the cutoffs fit the compacted
            capacities; else reallocate, as for ``did_buffer_overflow``); short-range models give zero charges and E_elec. An
            :class:`~eqlr_jax.EnsemblePotential` gives the members' mean and adds
            ``members_energy`` (K,) eV, whose gradients are the members' forces.
        species: (N,) atomic numbers. long_range: whether the model has charges.
    """

    neighbor_fn: NeighborFns
    energy_fn: Callable
    terms_fn: Callable
    species: np.ndarray
    long_range: bool


def potential_neighbor_list(displacement_fn, box, potential, species, *, total_charge: float = 0.0,
                            fractional_coordinates: bool = False, **neighbor_kwargs):
    """``(neighbor_fn, energy_fn)`` of ``potential`` for jax-md (see the module docstring).

    Args:
        displacement_fn: jax-md displacement function (accepted for the usual jax-md signature;
            the periodicity comes from ``box`` and ``pbc``, the images from the lists).
        box: (3, 3) jax-md box, lattice vectors as COLUMNS (``atoms.cell.array.T``), Å; or a
            scalar / (3,) for cubic / orthorhombic cells; ``None`` for an isolated molecule.
        potential: an :class:`eqlr_jax.Potential` (anything with ``config``, ``runtime`` and a
            pure ``terms(graph, positions, cell, charges_guess)``).
        species: (N,) atomic numbers, one per atom.
        total_charge: net charge of the system, e (long-range models).
        fractional_coordinates: positions are fractional (as ``space.periodic_general(box,
            fractional_coordinates=True)``, which jax-md's NPT needs), else Cartesian Å.
        **neighbor_kwargs: ``dr_threshold`` (skin, Å, default 0.5), ``capacity_multiplier``
            (default 1.25), ``pbc`` ((3,) bool, default all True with a box), ``kvector_margin``
            (default 0.05, see the module docstring), ``cell_list`` (``"auto"``, True or False:
            rebuild a list through a grid of bins, ``eqlr_jax.jit_lists.Bins``, where the
            3-D periodic cell is at least three cutoffs across; ``"auto"`` where that tests
            fewer atom pairs than all N²).

    Raises:
        ValueError: species unknown to the model, a bad box or pbc, fractional coordinates
            without a box, an unknown keyword.
    """
    fns = md_functions(displacement_fn, box, potential, species, total_charge=total_charge,
                       fractional_coordinates=fractional_coordinates, **neighbor_kwargs)
    return fns.neighbor_fn, fns.energy_fn


def _box_matrix(box, dtype=None):
    """A jax-md box (scalar, (3,) or (3, 3)) as a (3, 3) matrix with lattice vectors as columns."""
    b = jnp.asarray(box) if dtype is None else jnp.asarray(box, dtype)
    if b.ndim == 0:
        return b * jnp.eye(3, dtype=b.dtype)
    if b.shape == (3,):
        return jnp.diag(b)
    if b.shape == (3, 3):
        return b
    raise ValueError(f"box must be a scalar, (3,) or (3, 3) (lattice vectors as columns), got shape {b.shape}")


def md_functions(displacement_fn, box, potential, species, *, total_charge: float = 0.0,
                 fractional_coordinates: bool = False, **neighbor_kwargs) -> MDFunctions:
    """:func:`potential_neighbor_list` plus the per-term energies and charges (``terms_fn``)."""
    from jax_md import space

    del displacement_fn
    unknown = set(neighbor_kwargs) - set(NEIGHBOR_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown keyword argument(s) {sorted(unknown)}; known: {sorted(NEIGHBOR_DEFAULTS)}")
    opts = {**NEIGHBOR_DEFAULTS, **neighbor_kwargs}
    skin = float(opts["dr_threshold"])
    multiplier = float(opts["capacity_multiplier"])
    margin = float(opts["kvector_margin"])
    if skin < 0 or multiplier < 1 or margin < 0:
        raise ValueError(f"need dr_threshold >= 0, capacity_multiplier >= 1, kvector_margin >= 0; got {opts}")
    use_bins = opts["cell_list"]
    if use_bins not in ("auto", True, False):
        raise ValueError(f"cell_list must be 'auto', True or False, got {use_bins!r}")
    numbers = np.asarray(species)
    if numbers.ndim != 1 or not np.issubdtype(numbers.dtype, np.integer) or len(numbers) == 0:
        raise ValueError(f"species must be a non-empty (N,) array of atomic numbers, got {numbers.dtype} "
                         f"{numbers.shape}")
    n = len(numbers)
    idx = jnp.asarray(species_indices(numbers, potential.species))
    spec = long_range_spec(potential.config, potential.runtime)
    periodic = box is not None
    if periodic:
        box0 = np.asarray(_box_matrix(box), np.float64)
        if not np.all(np.isfinite(box0)) or abs(np.linalg.det(box0)) < 1e-9:
            raise ValueError(f"box must be a finite, non-singular matrix (lattice vectors as columns), got {box0}")
        pbc = np.ones(3, bool) if opts["pbc"] is None else np.broadcast_to(np.asarray(opts["pbc"], bool), (3,))
        if not pbc.any():
            raise ValueError("pbc is all False: pass box=None for an isolated structure")
        if spec is not None and pbc.sum() == 1:
            raise ValueError("long-range electrostatics of 1-D periodic structures (wires) is not supported")
    else:
        if fractional_coordinates:
            raise ValueError("fractional_coordinates=True needs a box")
        if opts["pbc"] is not None and np.any(opts["pbc"]):
            raise ValueError("pbc needs a box")
        box0, pbc = None, np.zeros(3, bool)
    tq = float(total_charge)
    if not math.isfinite(tq):
        raise ValueError(f"total_charge must be finite, got {total_charge}")
    if spec is None and tq != 0:
        warnings.warn("a short-range model ignores the total charge", stacklevel=2)
    r_max = float(potential.cutoff)
    lr_periodic = spec is not None and periodic
    if spec is not None:
        gamma_max = float(np.max(np.asarray(spec.gamma_max)[np.asarray(idx)]))
        if periodic:
            eta, r_cut, k_cut = ewald_parameters(box0.T, n, gamma_max, spec.accuracy, spec.eta_factor)
        else:
            pi, pj = np.triu_indices(n, k=1)
            open_pairs = (jnp.asarray(pi, jnp.int32), jnp.asarray(pj, jnp.int32))
    lr_pbc = np.ones(3, bool)  # the Ewald sum is 3-D periodic (a slab adds its dipole correction)

    # -- positions and cell ------------------------------------------------------------------
    def geometry(R, box_in, perturbation=None):
        """Cartesian positions (N, 3), cell rows (3, 3) (zeros when open), fractional u (N, 3)."""
        R = jnp.asarray(R)
        if R.shape != (n, 3):
            raise ValueError(f"positions must have shape ({n}, 3) (one row per species entry), got {R.shape}")
        if not periodic:
            x, cell = R, jnp.zeros((3, 3), R.dtype)
            u = jax.lax.stop_gradient(x)
        else:
            b = _box_matrix(box_in, R.dtype)
            cell = b.T
            if fractional_coordinates:
                x = space.transform(b, R)  # its custom jvp: dE/dR is the Cartesian gradient
                u = jax.lax.stop_gradient(R)
            else:
                x = R
                u = jax.lax.stop_gradient(R @ jnp.linalg.inv(cell))
        if perturbation is not None:
            x = space.raw_transform(perturbation, x)
            cell = space.raw_transform(perturbation, cell)
        return x, cell, u

    # -- lists -------------------------------------------------------------------------------
    def cartesian(u, cell):
        return (u @ cell, cell) if periodic else (u, jnp.zeros((3, 3), u.dtype))

    def build(u, cell, sr_mode, lr_mode, caps):
        x, c = cartesian(u, cell)
        sr = build_edges(x, u, c, pbc, sr_mode, r_max + skin, caps[0], half=False)
        lr = build_edges(x, u, c, lr_pbc, lr_mode, r_cut + skin, caps[1], half=True) if lr_periodic else None
        return sr, lr

    @functools.partial(jax.jit, static_argnums=(2, 3))
    def count(u, cell, sr_mode, lr_mode):
        """Entries within cutoff + skin and within the cutoff: (sr, lr, sr inside, lr inside)."""
        x, c = cartesian(u, cell)
        zero = jnp.zeros((), jnp.int32)
        n = [jnp.sum(candidates(x, u, c, pbc, sr_mode, r_max + d, half=False), dtype=jnp.int32) for d in (skin, 0.0)]
        m = [jnp.sum(candidates(x, u, c, lr_pbc, lr_mode, r_cut + d, half=True), dtype=jnp.int32) if lr_periodic
             else zero for d in (skin, 0.0)]
        return n[0], m[0], n[1], m[1]

    def overflow(nb: NeighborList, cell):
        flag = nb.sr.count > nb.sr.capacity
        if periodic:
            flag = flag | mode_overflows(nb.sr_extent, cell, r_max + skin, pbc)
        if lr_periodic:
            flag = flag | mode_overflows(nb.lr_extent, cell, r_cut + skin, lr_pbc)
            flag = flag | (nb.lr.count > nb.lr.capacity)
            stretch = jnp.linalg.inv(nb.kvector_box.T) @ cell  # C_alloc⁻¹ C, rows = lattice vectors
            flag = flag | (jnp.linalg.svd(stretch, compute_uv=False)[0] > nb.kvector_cover * (1 + 1e-12))
        return flag

    _build_jit = jax.jit(build, static_argnums=(2, 3, 4))

    def allocate(R, extra_capacity: int = 0, box=None, capacity=(), cover=(), bin_capacity=(),
                 **kwargs) -> NeighborList:
        """A new list built at ``R`` (and ``box``, default: the factory's box): host code.

        ``capacity``: lower bounds of the capacities (``NeighborList.capacities``, the previous
        list's), so that a reallocation keeps the array shapes (and the compiled program)
        unless a list has outgrown them; a k-vector set that outgrows its bound gets 25 % room
        (zero Miller rows, which are inert). ``cover``: more ``(R, box)`` geometries the list
        must also serve without overflow (the end of a chunk that is re-run from ``R``):
        capacities, image stencils and the k-vector set are sized for all of them.
        ``bin_capacity``: lower bounds of the room per bin of lists rebuilt through bins
        (``NeighborList.bin_capacities``)."""
        capacity = tuple(int(c) for c in capacity) + (0,) * (5 - len(capacity))
        geoms = []
        for r, bx in [(R, box)] + list(cover):
            r = jnp.asarray(r)
            b = _box_matrix(box0 if bx is None else bx, r.dtype) if periodic else None
            geoms.append((b,) + geometry(r, b)[1:])
        b, cell, u = geoms[0]
        cells = [np.asarray(g[1], np.float64) for g in geoms]
        sr_mode = merge_modes([list_mode(c, r_max + skin, pbc) for c in cells]) if periodic else None
        lr_mode = merge_modes([list_mode(c, r_cut + skin, lr_pbc) for c in cells]) if lr_periodic else None
        us = [np.asarray(g[2], np.float64) for g in geoms]
        sr_mode = bins_mode(sr_mode, cells, us, r_max + skin, pbc, use_bins) if periodic else None
        if lr_periodic:
            lr_mode = bins_mode(lr_mode, cells, us, r_cut + skin, lr_pbc, use_bins)
        bin_capacity = tuple(bin_capacity) + (0, 0)
        sr_mode, lr_mode = at_least(sr_mode, bin_capacity[0]), at_least(lr_mode, bin_capacity[1])
        counts = np.max([[int(c) for c in count(g[2], g[1], sr_mode, lr_mode)] for g in geoms], axis=0)
        extra = n * int(extra_capacity)
        caps = tuple(max(int(counts[i] * multiplier) + extra, capacity[i], 1) for i in (0, 1))
        # the entries within the cutoffs fluctuate less than the list: half the margin
        compact_mult = 1.0 + 0.5 * (multiplier - 1.0)
        compact_caps = tuple(0 if skin == 0 else min(caps[i], max(int(counts[2 + i] * compact_mult) + 8 + extra,
                                                                   capacity[3 + i], 1)) for i in (0, 1))
        sr, lr = _build_jit(u, cell, sr_mode, lr_mode, caps)
        miller = cover_k = None
        if lr_periodic:
            inv = np.linalg.inv(cells[0])
            stretch = max([1.0] + [float(np.linalg.svd(inv @ c, compute_uv=False)[0]) for c in cells[1:]])
            cover_k = (1.0 + margin) * stretch
            m = miller_indices(cells[0], k_cut * cover_k)
            k_cap = max(len(m), 1) if len(m) <= capacity[2] or capacity[2] == 0 else int(1.25 * len(m))
            k_cap = max(k_cap, capacity[2])
            miller = jnp.asarray(np.concatenate([m, np.zeros((k_cap - len(m), 3), m.dtype)]), R.dtype)  # k = 0: no term
            cover_k = jnp.asarray(cover_k, cell.dtype)
        nb = NeighborList(sr=sr, lr=lr, miller=miller, reference_position=u, reference_box=b, box=b,
                          kvector_box=b if lr_periodic else None, kvector_cover=cover_k,
                          did_buffer_overflow=jnp.zeros((), bool), update_fn=update, sr_extent=sr_mode,
                          lr_extent=lr_mode, sr_compact=compact_caps[0],
                          lr_compact=compact_caps[1] if lr_periodic else 0)
        return dataclasses.replace(nb, did_buffer_overflow=overflow(nb, cell) | ~entries_fit(u, cell, nb))

    def moved(u, cell, nb: NeighborList):
        """Bound on how much any pair distance has changed since ``nb`` was built, Å: twice the
        largest atom displacement (wraps removed) plus the deformation of the stencil's images."""
        if periodic:
            ref_cell = nb.reference_box.T
            wraps = jnp.round(u - nb.reference_position)
            dx = (u - wraps) @ cell - nb.reference_position @ ref_cell
            ext = jnp.asarray(np.maximum(image_reach(nb.sr_extent, pbc), image_reach(nb.lr_extent, lr_pbc)), cell.dtype)
            deform = jnp.sum(ext * jnp.linalg.norm(cell - ref_cell, axis=1))
        else:
            dx, deform = u - nb.reference_position, 0.0
        return 2.0 * jnp.sqrt(jnp.max(jnp.sum(dx * dx, axis=-1))) + deform

    def update(R, neighbors: NeighborList | None = None, **kwargs) -> NeighborList:
        if neighbors is None:
            return allocate(R, **kwargs)
        R = jnp.asarray(R)
        b = _box_matrix(kwargs["box"], R.dtype) if (periodic and "box" in kwargs) else neighbors.box
        _, cell, u = geometry(R, b)

        def rebuild(_):
            sr, lr = build(u, cell, neighbors.sr_extent, neighbors.lr_extent,
                           (neighbors.sr.capacity, neighbors.lr.capacity if lr_periodic else 1))
            return dataclasses.replace(neighbors, sr=sr, lr=lr, reference_position=u, reference_box=b)

        if skin > 0 and not kwargs.get("rebuild", False):
            nb = jax.lax.cond(moved(u, cell, neighbors) >= 0.5 * skin, rebuild, lambda _: neighbors, None)
        else:
            nb = rebuild(None)
        nb = dataclasses.replace(nb, box=b)
        return dataclasses.replace(nb, did_buffer_overflow=overflow(nb, cell) | ~entries_fit(u, cell, nb))

    # -- graph and energy --------------------------------------------------------------------
    def edge_shifts(edges: Edges, wraps):
        """Shifts that keep each entry's image under atoms wrapped since the list was built."""
        return (edges.shifts + wraps[edges.receivers] - wraps[edges.senders]).astype(wraps.dtype)

    def vectors(x, cell, u, edges: Edges, nb: NeighborList):
        """The entries' current shifts and vectors x_s − x_r + shift @ cell, Å."""
        wraps = jnp.round(u - nb.reference_position) if periodic else jnp.zeros_like(u)
        sh = edge_shifts(edges, wraps)
        return sh, x[edges.senders] - x[edges.receivers] + sh @ cell

    def entries_fit(u, cell, nb: NeighborList):
        """() bool: the entries within r_max (network) and within the Ewald cutoff (pairs) fit the
        compacted capacities at (u, cell)."""
        x, c = cartesian(u, cell)

        def fits(edges, rc, capacity):
            if not capacity:
                return jnp.ones((), bool)
            v = jax.lax.stop_gradient(vectors(x, c, u, edges, nb)[1])
            return jnp.sum(edges.mask & (jnp.sum(v * v, axis=-1) < rc * rc), dtype=jnp.int32) <= capacity

        return fits(nb.sr, r_max, nb.sr_compact) & (fits(nb.lr, r_cut, nb.lr_compact) if lr_periodic
                                                     else jnp.ones((), bool))

    def entries(x, cell, u, nb: NeighborList):
        """What the model evaluates: the network's edges and the Ewald pairs of the lists within
        the cutoffs (compacted when the list has a skin), as (receivers, senders, shifts, mask),
        and () bool: no entry was lost to the compacted capacities."""
        ok = jnp.ones((), bool)
        sh, vec = vectors(x, cell, u, nb.sr, nb)
        if nb.sr_compact:
            *sr, cnt = compact(nb.sr, sh, vec, r_max, nb.sr_compact, n)
            ok = ok & (cnt <= nb.sr_compact)
        else:
            within = jnp.sum(jax.lax.stop_gradient(vec) ** 2, axis=-1) < r_max * r_max
            sr = (nb.sr.receivers, nb.sr.senders, sh, nb.sr.mask & within)
        lr = None
        if lr_periodic:
            lsh, lvec = vectors(x, cell, u, nb.lr, nb)
            if nb.lr_compact:
                *lr, cnt = compact(nb.lr, lsh, lvec, r_cut, nb.lr_compact, n)
                ok = ok & (cnt <= nb.lr_compact)
            else:
                lr = (nb.lr.receivers, nb.lr.senders, lsh, nb.lr.mask)
        return sr, lr, ok

    def make_graph(x, cell, u, nb: NeighborList):
        """(the model's Graph, () bool: no entry lost to the compacted capacities)."""
        dt = x.dtype
        (rec, snd, sr_shift, sr_mask), lr, fits = entries(x, cell, u, nb)
        cells = jnp.stack([cell, jnp.zeros((3, 3), dt)])
        long_range = None
        if spec is not None:
            if lr_periodic:
                k = nb.miller.shape[0]
                long_range = FlatData(
                    pair_i=lr[0], pair_j=lr[1], pair_shift=lr[2].astype(dt),
                    pair_mask=lr[3], miller=nb.miller, k_graph=jnp.zeros(k, jnp.int32),
                    k_mask=jnp.ones(k, bool), eta=jnp.asarray([eta, 1.0], dt), r_cut=jnp.asarray([r_cut, np.inf], dt),
                    periodic=jnp.asarray([True, False]), slab=jnp.asarray([~pbc, np.zeros(3, bool)], dt))
            else:
                p = open_pairs[0].shape[0]
                long_range = FlatData(
                    pair_i=open_pairs[0], pair_j=open_pairs[1], pair_shift=jnp.zeros((p, 3), dt),
                    pair_mask=jnp.ones(p, bool), miller=jnp.zeros((1, 3), dt), k_graph=jnp.ones(1, jnp.int32),
                    k_mask=jnp.zeros(1, bool), eta=jnp.ones(2, dt), r_cut=jnp.full(2, np.inf, dt),
                    periodic=jnp.zeros(2, bool), slab=jnp.zeros((2, 3), dt))
        return Graph(positions=x, species=idx, node_graph=jnp.zeros(n, jnp.int32), node_mask=jnp.ones(n, bool),
                     senders=snd, receivers=rec, shifts=sr_shift.astype(dt),
                     edge_mask=sr_mask, cell=cells, pbc=jnp.asarray([pbc, np.zeros(3, bool)]),
                     total_charge=jnp.asarray([tq, 0.0], dt), graph_mask=jnp.asarray([True, False]),
                     long_range=long_range), fits

    def terms_fn(R, neighbor: NeighborList, charges_guess=None, **kwargs) -> dict:
        _TRACES["terms"] += 1
        b = kwargs.get("box", neighbor.box) if periodic else None
        x, cell, u = geometry(R, b, kwargs.get("perturbation"))
        graph, fits = make_graph(x, cell, u, neighbor)
        t = potential.terms(graph, x, graph.cell, charges_guess)
        e = t["energy"][0]
        b0 = neighbor.box if periodic else None  # the list's validity, at the unperturbed geometry
        _, cell0, u0 = geometry(R, kwargs.get("box", b0) if periodic else None)
        out = {"energy": e, "neighbors_ok": moved(u0, cell0, neighbor) < skin, "edges_ok": fits}
        if spec is None:
            zero = jnp.zeros((), x.dtype)
            out.update(energy_short=e, energy_elec=zero, charges=jnp.zeros(n, x.dtype), total_charge=zero,
                       qeq_residual=zero, qeq_iterations=jnp.zeros((), jnp.int32))
        else:
            out.update(energy_short=t["energy_short"][0], energy_elec=t["energy_elec"][0], charges=t["charges"],
                       total_charge=jnp.sum(t["charges"]), qeq_residual=t["qeq_residual"],
                       qeq_iterations=t["qeq_iterations"])
        if "members_energy" in t:  # an ensemble: the members' energies, for the force spread
            out["members_energy"] = t["members_energy"][:, 0]
        return out

    def energy_fn(R, neighbor: NeighborList, **kwargs):
        return terms_fn(R, neighbor, **kwargs)["energy"]

    return MDFunctions(NeighborFns(allocate, update), energy_fn, terms_fn, numbers, spec is not None)


def with_extra_energy(fns: MDFunctions, extra: Callable) -> MDFunctions:
    """``fns`` whose energy adds ``extra(R, box=..., perturbation=...)`` (eV), e.g. a jax-md pair
    potential built on the same space; ``terms_fn`` reports it as ``energy_extra``."""

    def terms_fn(R, neighbor, charges_guess=None, **kwargs):
        t = dict(fns.terms_fn(R, neighbor, charges_guess=charges_guess, **kwargs))
        t["energy_extra"] = extra(R, **{k: v for k, v in kwargs.items() if k in ("box", "perturbation")})
        t["energy"] = t["energy"] + t["energy_extra"]
        return t

    return fns._replace(energy_fn=lambda R, neighbor, **kw: terms_fn(R, neighbor, **kw)["energy"], terms_fn=terms_fn)


# QEq in MD (the integrator helper) lives in its own module; re-exported here
from .md_qeq import QEqState, qeq_integrator  # noqa: E402
