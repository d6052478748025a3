"""The jit-able neighbour lists of the jax-md path (eqlr_jax.jit_lists) against the all-pairs
minimum-image list: the cell list (bins) on a grid finer than 3 x 3 x 3, so that bins are
really skipped; triclinic cells, unwrapped fractional coordinates, full and half lists."""
import jax.numpy as jnp
import numpy as np
import pytest

from eqlr_jax.jit_lists import Bins, bins_mode, build_edges, heights

PBC = np.ones(3, bool)


def random_cell(n, seed=0):
    """n atoms uniformly in a sheared 30 Å cell, fractional coordinates spread over ±3 cells."""
    rng = np.random.default_rng(seed)
    cell = np.array([[30.0, 0.0, 0.0], [4.0, 29.0, 0.0], [-3.0, 2.5, 31.0]])
    u = rng.random((n, 3)) + rng.integers(-3, 4, (n, 3))
    return cell, u


def entries(edges):
    m = np.asarray(edges.mask)
    rec, snd, sh = (np.asarray(a)[m] for a in (edges.receivers, edges.senders, edges.shifts))
    assert np.all(np.diff(np.asarray(edges.receivers)) >= 0)  # sorted by receiver, padding last
    return sorted(zip(rec.tolist(), snd.tolist(), map(tuple, sh.tolist())))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("half", [False, True])
def test_bins_find_the_all_pairs_list(dtype, half):
    cell, u = random_cell(400)
    cutoff = 5.5
    bins = bins_mode(None, [cell], [u], cutoff, PBC, use=True)
    assert isinstance(bins, Bins) and min(bins.cells) >= 4  # some bins are not neighbours
    uj, cj = jnp.asarray(u, dtype), jnp.asarray(cell, dtype)
    x = uj @ cj
    capacity = 20 * len(u)
    ref = build_edges(x, uj, cj, PBC, None, cutoff, capacity, half)
    got = build_edges(x, uj, cj, PBC, bins, cutoff, capacity, half)
    assert int(got.count) == int(ref.count) > 2 * len(u)
    assert entries(got) == entries(ref)
    n = len(u)
    m = ~np.asarray(got.mask)
    assert np.all(np.asarray(got.receivers)[m] == n - 1) and np.all(np.asarray(got.senders)[m] == n - 1)
    assert np.all(np.asarray(got.shifts)[m] == 0)


def test_bins_mode_choice():
    cell, u = random_cell(3000)
    auto = bins_mode(None, [cell], [u], 5.5, PBC)
    assert isinstance(auto, Bins) and auto.cells == (5, 5, 5)  # 30 Å / (5.5 Å × 1.05)
    assert 27 * auto.capacity < 3000
    assert bins_mode(None, [cell], [u[:200]], 5.5, PBC) is None  # 27 bins' worth >= N: all pairs
    assert bins_mode(None, [cell], [u], 5.5, PBC, use=False) is None
    assert bins_mode(None, [cell], [u], 5.5, np.array([True, True, False]), use=True) is None  # a slab
    assert bins_mode((1, 1, 1), [cell], [u], 5.5, PBC, use=True) == (1, 1, 1)  # a stencil stays
    assert bins_mode(None, [cell], [u], 11.0, PBC, use=True) is None  # fewer than 3 bins per axis
    # a grid for two cells is thick enough for the thinner one
    two = bins_mode(None, [cell, 0.8 * cell], [u, u], 5.5, PBC, use=True)
    assert np.all(heights(0.8 * cell) / np.asarray(two.cells) >= 5.5)
    # dilute: no more bins than twice the atoms
    dilute = bins_mode(None, [10 * cell], [u[:40]], 5.5, PBC, use=True)
    assert np.prod(dilute.cells) <= 80
