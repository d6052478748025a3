"""Host neighbour lists against ASE's (an independent implementation) and a brute-force sum."""
import itertools

import ase
import ase.neighborlist
import numpy as np
import pytest

from eqlr_jax.neighbors import OverlappingAtomsError, neighbor_list
from eqlr_jax.structure import InvalidStructureError, Structure


def _pairs(i, j, S):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(S).tolist())))


def brute_force(pos, cell, pbc, rc):
    """All (i, j, S) with |r_j - r_i + S cell| < rc, scanning enough images."""
    reps = []
    for a in range(3):
        if pbc[a]:
            # number of images along a: rc / (distance between lattice planes)
            inv = np.linalg.inv(cell)
            height = 1.0 / np.linalg.norm(inv[:, a])
            reps.append(range(-int(np.ceil(rc / height)) - 1, int(np.ceil(rc / height)) + 2))
        else:
            reps.append([0])
    out = []
    for S in itertools.product(*reps):
        t = np.asarray(S) @ cell
        for i in range(len(pos)):
            for j in range(len(pos)):
                d = np.linalg.norm(pos[j] - pos[i] + t)
                if 0 < d < rc:
                    out.append((i, j, S))
    return sorted(out)


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (True, False, False)])
def test_small_triclinic_cell_matches_brute_force(pbc):
    rng = np.random.default_rng(3)
    cell = np.array([[3.0, 0.0, 0.0], [1.2, 2.8, 0.0], [0.7, -0.9, 3.1]])
    pos = rng.random((4, 3)) @ cell
    s = Structure(pos, [11, 17, 11, 17], cell, pbc)
    i, j, S, d = neighbor_list(s, 5.0)
    assert _pairs(i, j, S) == brute_force(pos, cell, pbc, 5.0)
    # several images of the same neighbour exist (cell smaller than 2 * cutoff)
    assert len(i) > len(set(zip(i.tolist(), j.tolist())))
    a = ase.Atoms("NaClNaCl", positions=pos, cell=cell, pbc=pbc)
    ia, ja, Sa = ase.neighborlist.neighbor_list("ijS", a, 5.0)
    assert _pairs(i, j, S) == _pairs(ia, ja, Sa)
    np.testing.assert_allclose(d, np.linalg.norm(pos[j] - pos[i] + S @ cell, axis=1), rtol=1e-12)


def test_isolated_molecule_without_cell():
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.5, 0], [7.0, 0, 0]])
    s = Structure(pos, [1, 1, 1, 1], None, False)
    i, j, S, _ = neighbor_list(s, 2.0)
    assert _pairs(i, j, S) == brute_force(pos, np.zeros((3, 3)), (False,) * 3, 2.0)
    assert not S.any()


def test_slab_with_zero_vacuum_vector():
    """Mixed periodicity with a zero third cell vector must not crash as a singular cell."""
    cell = np.diag([3.0, 3.0, 0.0])
    pos = np.array([[0.0, 0, 0], [1.5, 1.5, 1.0]])
    s = Structure(pos, [11, 17], cell, (True, True, False))
    i, j, S, _ = neighbor_list(s, 4.0)
    assert _pairs(i, j, S) == brute_force(pos, np.diag([3.0, 3.0, 1.0]), (True, True, False), 4.0)


def test_overlapping_atoms_rejected():
    s = Structure([[0, 0, 0], [0.01, 0, 0]], [11, 17], None, False)
    with pytest.raises(OverlappingAtomsError, match="overlaps atom 1"):
        neighbor_list(s, 3.0)


@pytest.mark.parametrize("pos,match", [
    ([[0, 0, 0], [np.nan, 0, 0]], "NaN or inf"),
    ([[0, 0, 0], [np.inf, 0, 0]], "NaN or inf"),
])
def test_nan_positions(pos, match):
    with pytest.raises(InvalidStructureError, match=match):
        Structure(pos, [1, 1], None, False)


def test_singular_cells():
    with pytest.raises(InvalidStructureError, match="zero volume"):
        Structure([[0, 0, 0]], [1], np.zeros((3, 3)), True)
    with pytest.raises(InvalidStructureError, match="zero volume"):
        Structure([[0, 0, 0]], [1], [[1, 0, 0], [2, 0, 0], [0, 0, 1]], True)
    with pytest.raises(InvalidStructureError, match="singular"):
        Structure([[0, 0, 0]], [1], [[1, 0, 0], [2, 0, 0], [0, 0, 0]], (True, True, False))


def test_shape_errors():
    with pytest.raises(InvalidStructureError, match="shape"):
        Structure([[0, 0]], [1], None, False)
    with pytest.raises(InvalidStructureError, match="match positions"):
        Structure([[0, 0, 0]], [1, 2], None, False)
