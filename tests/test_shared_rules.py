"""One of each: the capacity error, the singular-cell rule and the vesin call are shared by the
model side (Structure, graph, neighbour lists) and the electrostatics side."""
import dataclasses

import numpy as np
import pytest

import eqlr_jax
from eqlr_jax import electrostatics as es
from eqlr_jax.electrostatics.pairs import build_pair_list
from eqlr_jax.electrostatics.validation import check_cell
from eqlr_jax.graph import Capacity
from eqlr_jax.lattice import lattice_defect
from eqlr_jax.neighbors import pairs_within
from eqlr_jax.structure import InvalidStructureError, Structure


def test_capacity_error_is_one_class():
    assert eqlr_jax.graph.CapacityError is es.CapacityError is eqlr_jax.CapacityError
    assert issubclass(eqlr_jax.CapacityError, ValueError)


def test_pair_list_and_graph_overflows_are_both_caught_as_capacity_error():
    rng = np.random.default_rng(0)
    cell = 6.0 * np.eye(3)
    pos = rng.random((6, 3)) @ cell
    setup = es.prepare_ewald(cell, 6, 0.5, 1e-8)
    small = dataclasses.replace(setup, pair_capacity=int(setup.build(pos).pairs.n_found) - 1)
    caught = []
    try:
        small.build(pos)
    except eqlr_jax.CapacityError as e:
        caught.append(e)
    s = Structure(pos, [11, 17] * 3, cell, True)
    try:
        eqlr_jax.build_graph(s, 4.0, [11, 17], capacity=Capacity(16, 16, 2))
    except eqlr_jax.CapacityError as e:
        caught.append(e)
    assert len(caught) == 2
    assert "pair list" in str(caught[0]) and "edges" in str(caught[1])


# Rows are lattice vectors, Å. "Reject": the relative rule (k-volume <= 1e-10 x product of the
# lengths) fails although the volume / area is far above the absolute floor that alone used to
# decide in Structure. "Accept": strongly sheared but independent.
NEARLY_SINGULAR = {
    "long_cell_flat_by_1e-11": np.array([[1e3, 0, 0], [0, 1e3, 0], [1e3, 0, 1e-8]]),  # V = 1e-2
    "sine_1e-11_volume_15": 1e4 * np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 1.5e-11]]),
    "metres_not_angstrom": 5e-10 * np.eye(3),  # regular shape, volume 1.25e-28 Å^3: the floor
}
SHEARED_BUT_REGULAR = {
    "angle_1e-8": np.array([[10.0, 0, 0], [0, 10.0, 0], [10.0, 0, 1e-7]]),  # V = 1e-5
    "triclinic": np.array([[3.0, 0.0, 0.0], [1.2, 2.8, 0.0], [0.7, -0.9, 3.1]]),
    "large": 1e4 * np.eye(3),
}


@pytest.mark.parametrize("cell", NEARLY_SINGULAR.values(), ids=NEARLY_SINGULAR.keys())
def test_both_entry_points_reject_the_same_cells(cell):
    assert lattice_defect(cell) is not None
    with pytest.raises(InvalidStructureError, match="cell"):
        Structure([[0.0, 0, 0]], [1], cell, True)
    with pytest.raises(ValueError, match="cell has") as info:
        check_cell(cell)
    assert not isinstance(info.value, InvalidStructureError)
    with pytest.raises(ValueError, match="cell has"):
        es.coulomb_energy([[0.0, 0, 0], [1e-9, 0, 0]], [1.0, -1.0], 0.0, cell)


@pytest.mark.parametrize("cell", SHEARED_BUT_REGULAR.values(), ids=SHEARED_BUT_REGULAR.keys())
def test_both_entry_points_accept_the_same_cells(cell):
    assert lattice_defect(cell) is None
    Structure([[0.0, 0, 0]], [1], cell, True)
    np.testing.assert_array_equal(check_cell(cell), cell)


def test_partial_periodicity_uses_the_same_relative_rule():
    # two nearly parallel periodic vectors: area 5e-3 Å^2 (above the old floor 1e-4 Å^2),
    # sine of their angle 5e-11; the vacuum vector is zero
    parallel = np.array([[1e4, 0, 0], [1e4, 5e-7, 0], [0, 0, 0]])
    with pytest.raises(InvalidStructureError, match="zero area .* singular"):
        Structure([[0.0, 0, 0]], [1], parallel, (True, True, False))
    assert lattice_defect(parallel[:2]) is not None
    sheared = np.array([[1e4, 0, 0], [1e4, 1e-3, 0], [0, 0, 0]])  # sine 1e-7
    Structure([[0.0, 0, 0]], [1], sheared, (True, True, False))
    assert lattice_defect(sheared[:2]) is None
    # the same vectors with a dependent third one: fine as a slab, singular in 3-D
    slab = np.array([[4.0, 0, 0], [0, 4.0, 0], [4.0, 4.0, 0]])
    Structure([[0.0, 0, 0]], [1], slab, (True, True, False))
    with pytest.raises(InvalidStructureError, match="zero volume"):
        Structure([[0.0, 0, 0]], [1], slab, True)
    with pytest.raises(ValueError, match="singular"):
        check_cell(slab)


def test_singular_rule_is_scale_invariant_above_the_floor():
    shape = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 3e-11]])
    for scale in (1e2, 1e3, 1e4):  # volumes 1e-3 to 1e3 Å^3, all above the floor
        assert lattice_defect(scale * shape).startswith("zero volume")
        assert lattice_defect(scale * (shape + [[0, 0, 0], [0, 0, 0], [0, 0, 1e-9]])) is None


def test_half_and_full_lists_come_from_one_vesin_call():
    rng = np.random.default_rng(4)
    cell = np.array([[3.0, 0.0, 0.0], [1.2, 2.8, 0.0], [0.7, -0.9, 3.1]])
    pos = rng.random((5, 3)) @ cell
    fi, fj, fS, fd = pairs_within(pos, cell, True, 4.5, full_list=True)
    hi, hj, hS, hd = pairs_within(pos, cell, True, 4.5, full_list=False)
    full = sorted(zip(fi.tolist(), fj.tolist(), map(tuple, fS.tolist())))
    both = sorted([(a, b, tuple(s)) for a, b, s in zip(hi.tolist(), hj.tolist(), hS.tolist())]
                  + [(b, a, tuple(-np.asarray(s))) for a, b, s in zip(hi.tolist(), hj.tolist(), hS.tolist())])
    assert full == both
    np.testing.assert_allclose(hd, np.linalg.norm(pos[hj] - pos[hi] + hS @ cell, axis=1), rtol=1e-12)
    pl = build_pair_list(pos, cell, 4.5, len(hi) + 3)
    assert int(pl.n_found) == len(hi) and pl.valid.sum() == len(hi)
    np.testing.assert_array_equal(pl.i[:len(hi)], hi)
    np.testing.assert_array_equal(pl.shifts[:len(hi)], hS)
