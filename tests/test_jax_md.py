"""The jax-md path (float64): the same energy, forces and stress as the ASE calculator, for short-
and long-range models, molecules and triclinic cells (also smaller than twice the cutoff); wrapped
atoms, the neighbour-list overflow flag, no recompiles across steps, clear errors."""
import ase
import ase.build
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqlr_jax
from eqlr_jax import LRConfig, NequIPConfig, Potential
from eqlr_jax.graph import UnknownElementError
from eqlr_jax.neighbors import neighbor_list

from helpers import random_triclinic

jax_md = pytest.importorskip("jax_md")
from jax_md import quantity, simulate, space  # noqa: E402

from eqlr_jax.jax_md import potential_neighbor_list, trace_count  # noqa: E402
from eqlr_jax.jit_lists import Bins, mode_overflows  # noqa: E402

LR_CFG = LRConfig(species=("Na", "Cl", "K"), r_max=4.0, num_features=4, num_layers_charge=1, num_layers=1,
                  radial_mlp_width=8, chi_hidden=8, charge_basis=4, avg_num_neighbors=10.0,
                  hardness_init=(3.0, 4.0, 2.0), ewald_accuracy=1e-10, qeq_tol=1e-12,
                  species_shift=(-1.0, -2.0, 0.5))
SR_CFG = NequIPConfig(species=("Na", "Cl", "K"), r_max=4.0, l_max=1, num_features=4, num_layers=2,
                      radial_mlp_width=8, avg_num_neighbors=10.0, species_shift=(-1.0, -2.0, 0.3))


@pytest.fixture(scope="module")
def pots():
    return {"sr": Potential.init(SR_CFG, seed=1, dtype=np.float64),
            "lr": Potential.init(LR_CFG, seed=2, dtype=np.float64)}


def molecule(q):
    rng = np.random.default_rng(0)
    atoms = ase.Atoms(numbers=rng.choice([11, 17, 19], 7), positions=rng.normal(0, 1.6, (7, 3)))
    atoms.info["total_charge"] = q
    return atoms


def small_cell(q):
    """6 atoms in a skewed cell whose widths are below 2 r_max (several images per neighbour)."""
    s = random_triclinic(seed=4, n=6)
    atoms = ase.Atoms(numbers=s.numbers, positions=s.positions, cell=s.cell, pbc=True)
    atoms.info["total_charge"] = q
    return atoms


def nacl_cell(q):
    """64-atom rattled rock salt in a sheared (triclinic) cell wider than 2 r_max."""
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(2)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.0, 0.0], [0.15, 1.0, 0.0], [-0.1, 0.2, 1.0]]),
                   scale_atoms=True)
    atoms.rattle(0.1, seed=3)
    atoms.info["total_charge"] = q
    return atoms


def jax_md_setup(pot, atoms, fractional, **kw):
    periodic = atoms.pbc.all()
    q = atoms.info["total_charge"] if pot.long_range else 0.0
    if periodic:
        box = jnp.asarray(atoms.cell.array.T)
        disp, shift = space.periodic_general(box, fractional_coordinates=fractional)
        R = jnp.asarray(atoms.get_scaled_positions(wrap=False) if fractional else atoms.positions)
    else:
        box = None
        disp, shift = space.free()
        R = jnp.asarray(atoms.positions)
    neighbor_fn, energy_fn = potential_neighbor_list(disp, box, pot, atoms.numbers, total_charge=q,
                                                     fractional_coordinates=fractional, **kw)
    return neighbor_fn, energy_fn, shift, box, R


def ase_reference(pot, atoms):
    atoms = atoms.copy()
    if not pot.long_range:
        atoms.info["total_charge"] = 0.0
    atoms.calc = eqlr_jax.Calculator(pot, dtype="float64")
    stress = atoms.get_stress(voigt=False) if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


@pytest.mark.parametrize("model", ["sr", "lr"])
@pytest.mark.parametrize("make,q,fractional", [(molecule, 1.0, False), (small_cell, -0.6, True),
                                               (nacl_cell, 1.0, False)], ids=["molecule", "small-cell", "nacl"])
def test_energy_forces_stress_match_ase(pots, model, make, q, fractional):
    pot = pots[model]
    atoms = make(q)
    e_ref, f_ref, s_ref = ase_reference(pot, atoms)
    # kvector_margin=0: exactly the ASE path's k-vector set (the margin adds terms below the accuracy)
    neighbor_fn, energy_fn, _, box, R = jax_md_setup(pot, atoms, fractional, kvector_margin=0.0)
    nbrs = neighbor_fn.allocate(R)
    assert not bool(nbrs.did_buffer_overflow)
    e, g = jax.jit(jax.value_and_grad(energy_fn))(R, nbrs)
    assert abs(float(e) - e_ref) < 1e-10
    np.testing.assert_allclose(np.asarray(-g), f_ref, rtol=0, atol=1e-10)
    assert np.abs(f_ref).max() > 1e-2
    if s_ref is not None:
        stress = jax.jit(lambda r, n: quantity.stress(energy_fn, r, box, neighbor=n))(R, nbrs)
        np.testing.assert_allclose(-np.asarray(stress), s_ref, rtol=0, atol=1e-10)  # jax-md's sign: −ASE's
        assert np.abs(s_ref).max() > 5e-5


def test_small_cell_lists_every_image(pots):
    atoms = small_cell(0.0)
    neighbor_fn, _, _, _, R = jax_md_setup(pots["sr"], atoms, True, dr_threshold=0.0)
    nbrs = neighbor_fn.allocate(R)
    i, j, S, _ = neighbor_list(eqlr_jax.Structure.from_ase(atoms), SR_CFG.r_max)
    assert len(i) > 4 * len(atoms) * (len(atoms) - 1)  # many images of each neighbour
    assert int(nbrs.sr.count) == len(i)
    assert min(np.asarray(atoms.cell.cellpar()[:3])) < 2 * SR_CFG.r_max
    host = sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
    m = np.asarray(nbrs.sr.mask)
    ours = sorted(zip(np.asarray(nbrs.sr.receivers)[m].tolist(), np.asarray(nbrs.sr.senders)[m].tolist(),
                      map(tuple, np.asarray(nbrs.sr.shifts)[m].tolist())))
    assert ours == host
    assert np.all(np.diff(np.asarray(nbrs.sr.receivers)) >= 0)  # sorted by receiver


def test_wrapped_atoms_and_no_recompiles(pots):
    """NVE steps in fractional coordinates with wrapping; the stale list (large skin) stays exact
    after atoms cross the cell boundary; one trace for all steps."""
    pot = pots["lr"]
    atoms = small_cell(-0.6)
    neighbor_fn, energy_fn, shift, box, R = jax_md_setup(pot, atoms, True, dr_threshold=1.0)
    R = jnp.mod(R + jnp.asarray([0.0, 0.0, 0.995 - float(R[0, 2])]), 1.0)  # atom 0 next to a face
    nbrs = neighbor_fn.allocate(R)
    init_fn, apply_fn = simulate.nve(energy_fn, shift, dt=0.02)
    masses = jnp.asarray(atoms.get_masses())
    state = init_fn(jax.random.PRNGKey(0), R, kT=0.05, mass=masses[:, None], neighbor=nbrs)
    state = state.set(momentum=state.momentum.at[0].set(jnp.asarray([0.0, 0.0, 2.0]) * masses[0]))

    @jax.jit
    def step(state, nbrs):
        state = apply_fn(state, neighbor=nbrs)
        return state, nbrs.update(state.position)

    before = None
    wrapped = False
    for k in range(6):
        state, nbrs = step(state, nbrs)
        if k == 0:
            before = trace_count()
        wrapped |= float(state.position[0, 2]) < 0.5
    assert trace_count() == before
    assert wrapped and not bool(nbrs.did_buffer_overflow)
    assert bool(jnp.any(jnp.round(state.position - nbrs.reference_position) != 0))  # stale list, wrapped atom
    moved = atoms.copy()
    moved.set_scaled_positions(np.asarray(state.position))
    e_ref, f_ref, _ = ase_reference(pot, moved)
    e, g = jax.value_and_grad(energy_fn)(state.position, nbrs)
    assert abs(float(e) - e_ref) < 1e-10
    np.testing.assert_allclose(np.asarray(-g), f_ref, atol=1e-10)


def test_kvector_margin_changes_energy_below_accuracy(pots):
    pot = pots["lr"]
    atoms = nacl_cell(0.0)
    e = []
    for margin in (0.0, 0.2):
        neighbor_fn, energy_fn, _, _, R = jax_md_setup(pot, atoms, False, kvector_margin=margin)
        nbrs = neighbor_fn.allocate(R)
        e.append(float(energy_fn(R, nbrs)))
        k = nbrs.miller.shape[0]
    assert k > 0 and abs(e[1] - e[0]) < 1e-8


def test_overflow_flags(pots):
    pot = pots["lr"]
    atoms = nacl_cell(0.0)
    neighbor_fn, _, _, box, R = jax_md_setup(pot, atoms, True)
    nbrs = neighbor_fn.allocate(R)
    update = jax.jit(lambda r, n, b: n.update(r, box=b))
    assert not bool(update(R, nbrs, box).did_buffer_overflow)
    assert bool(update(R, nbrs, box * 0.8).did_buffer_overflow)   # compressed: more neighbours
    assert bool(update(R, nbrs, box * 1.2).did_buffer_overflow)   # stretched past the k-vector margin
    grown = neighbor_fn.allocate(R, box=box * 0.8)
    assert not bool(grown.did_buffer_overflow) and grown.sr.capacity > nbrs.sr.capacity


def test_bad_input(pots):
    pot = pots["lr"]
    atoms = small_cell(0.0)
    box = jnp.asarray(atoms.cell.array.T)
    disp, _ = space.periodic_general(box)
    with pytest.raises(UnknownElementError, match="Mg"):
        potential_neighbor_list(disp, box, pot, np.array([11, 12, 17]))
    with pytest.raises(ValueError, match="box"):
        potential_neighbor_list(disp, jnp.ones((2, 3)), pot, atoms.numbers)
    with pytest.raises(ValueError, match="needs a box"):
        potential_neighbor_list(disp, None, pot, atoms.numbers, fractional_coordinates=True)
    with pytest.raises(TypeError, match="unknown keyword"):
        potential_neighbor_list(disp, box, pot, atoms.numbers, cutoff=3.0)
    neighbor_fn, energy_fn = potential_neighbor_list(disp, box, pot, atoms.numbers, fractional_coordinates=True)
    with pytest.raises(ValueError, match=r"shape \(6, 3\)"):
        neighbor_fn.allocate(jnp.zeros((5, 3)))


def nacl_216():
    """216-atom rattled rock salt in a sheared cell at least three SR cutoffs + skin across."""
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(3)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.0, 0.0], [0.08, 1.0, 0.0], [-0.05, 0.06, 1.0]]),
                   scale_atoms=True)
    atoms.rattle(0.15, seed=5)
    atoms.info["total_charge"] = 0.0
    return atoms


def _entries(edges):
    m = np.asarray(edges.mask)
    return sorted(zip(np.asarray(edges.receivers)[m].tolist(), np.asarray(edges.senders)[m].tolist(),
                      map(tuple, np.asarray(edges.shifts)[m].tolist())))


def test_cell_list_finds_the_same_edges_as_all_pairs(pots):
    """The bins (cell list) rebuild finds exactly the all-pairs list, sorted by receiver, in a
    triclinic cell with atoms outside the box, and gives the ASE calculator's energy and forces."""
    pot = pots["sr"]
    atoms = nacl_216()
    lists = {}
    for use in (False, True):
        neighbor_fn, energy_fn, _, _, R = jax_md_setup(pot, atoms, True, cell_list=use)
        R = R + jnp.asarray([0.3, -0.2, 1.1])  # unwrapped fractional coordinates
        nbrs = neighbor_fn.allocate(R)
        rebuilt = jax.jit(lambda r, n: n.update(r, rebuild=True))(R + 0.002, nbrs)
        assert isinstance(nbrs.sr_extent, Bins) == use and not bool(rebuilt.did_buffer_overflow)
        assert np.all(np.diff(np.asarray(rebuilt.sr.receivers)) >= 0)
        lists[use] = _entries(rebuilt.sr)
        e, g = jax.jit(jax.value_and_grad(energy_fn))(R, rebuilt)
    assert lists[True] == lists[False] and len(lists[True]) > 15 * len(atoms)
    e_ref, f_ref, _ = ase_reference(pot, atoms)
    assert abs(float(e) - e_ref) < 1e-10
    np.testing.assert_allclose(np.asarray(-g), f_ref, rtol=0, atol=1e-10)


def test_cell_list_overflows(pots):
    """A crowded bin and a cell squeezed below the bins' thickness both flag the list; a new
    allocation serves them; ``cell_list='auto'`` keeps all pairs where bins would test more."""
    pot = pots["sr"]
    neighbor_fn, _, _, box, R = jax_md_setup(pot, nacl_216(), True, cell_list=True)
    nbrs = neighbor_fn.allocate(R)
    bins = nbrs.sr_extent
    rebuild = jax.jit(lambda r, n, b: n.update(r, box=b, rebuild=True))
    assert not bool(rebuild(R, nbrs, box).did_buffer_overflow)
    crowd = R.at[: bins.capacity + 1].set(0.01 + 0.2 * R[: bins.capacity + 1] / bins.cells[0])
    assert bool(rebuild(crowd, nbrs, box).did_buffer_overflow)
    grown = neighbor_fn.allocate(crowd, capacity=nbrs.capacities)
    assert grown.sr_extent.capacity > bins.capacity and not bool(grown.did_buffer_overflow)
    cell = np.asarray(box).T  # rows; squeezed until the bins are just thinner than cutoff + skin
    h = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    for f, flagged in ((1.01, False), (0.99, True)):
        scale = f * (SR_CFG.r_max + 0.5) * np.asarray(bins.cells) / h
        assert bool(mode_overflows(bins, jnp.asarray(cell * scale[:, None]), SR_CFG.r_max + 0.5, (True,) * 3)) == flagged
    auto_fn, _, _, _, R = jax_md_setup(pot, nacl_216(), True)  # 27 bins' room > 216 atoms: all pairs
    assert auto_fn.allocate(R).sr_extent is None
    with pytest.raises(ValueError, match="cell_list"):
        jax_md_setup(pot, nacl_cell(0.0), True, cell_list="yes")
