"""Physics of the short-range potential, float64, against independent oracles:
symmetry (rotations, reflections, translations, permutations), periodic images (supercells),
central finite differences of the energy, and padding inertness."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import eqlr_jax
from eqlr_jax.graph import Capacity
from eqlr_jax.potential import trace_count

from helpers import random_triclinic

CAP = Capacity(n_node=48, n_edge=4096, n_graph=4)  # one compiled shape for most tests


def run(pot, structures, capacity=CAP, stress=True):
    g, _ = pot.graph(structures, capacity=capacity, dtype=np.float64)
    return g, jax.tree_util.tree_map(np.asarray, pot(g, compute_stress=stress))


def transformed(s, R=np.eye(3), t=np.zeros(3), perm=None):
    perm = np.arange(s.n_atoms) if perm is None else perm
    return eqlr_jax.Structure(s.positions[perm] @ R.T + t, s.numbers[perm], s.cell @ R.T, s.pbc,
                              s.total_charge)


@pytest.fixture(scope="module")
def cell_structure():
    return random_triclinic(seed=4, n=6)


@pytest.mark.parametrize("seed", [0, 1])
def test_equivariance_periodic(pot64, cell_structure, seed):
    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=seed).as_matrix()
    if seed == 1:
        R = -R  # improper rotation: reflection included
    t = rng.standard_normal(3) * 3
    perm = rng.permutation(cell_structure.n_atoms)
    _, a = run(pot64, cell_structure)
    _, b = run(pot64, transformed(cell_structure, R, t, perm))
    n = cell_structure.n_atoms
    assert abs(b["energy"][0] - a["energy"][0]) <= 1e-10 * abs(a["energy"][0])
    np.testing.assert_allclose(b["forces"][:n], (a["forces"][:n] @ R.T)[perm], rtol=0,
                               atol=1e-9 * np.abs(a["forces"]).max())
    np.testing.assert_allclose(b["stress"][0], R @ a["stress"][0] @ R.T, rtol=0,
                               atol=1e-9 * np.abs(a["stress"][0]).max())
    np.testing.assert_allclose(b["node_energies"][:n], a["node_energies"][:n][perm], rtol=1e-10)


def test_equivariance_lmax2_molecule():
    """l_max 2 network, isolated molecule (no cell): rotation + reflection + permutation."""
    cfg = eqlr_jax.NequIPConfig(species=("H", "C", "O"), r_max=3.0, l_max=2, num_features=4,
                                num_layers=2, radial_mlp_width=8)
    pot = eqlr_jax.Potential.init(cfg, seed=3, dtype=np.float64)
    rng = np.random.default_rng(5)
    pos = rng.standard_normal((7, 3)) * 1.2
    s = eqlr_jax.Structure(pos, [6, 8, 1, 1, 6, 1, 8], None, False)
    R = -Rotation.random(random_state=2).as_matrix()
    perm = rng.permutation(7)
    cap = Capacity(16, 64, 2)
    _, a = run(pot, s, cap, stress=False)
    _, b = run(pot, transformed(s, R, np.array([1.0, -2.0, 0.5]), perm), cap, stress=False)
    assert abs(b["energy"][0] - a["energy"][0]) <= 1e-10 * abs(a["energy"][0])
    np.testing.assert_allclose(b["forces"][:7], (a["forces"][:7] @ R.T)[perm], rtol=0,
                               atol=1e-9 * np.abs(a["forces"]).max())
    assert abs(a["forces"][:7].sum(0)).max() < 1e-12  # Newton's third law for an isolated molecule


def test_supercell_energy_small_triclinic(pot64):
    """E(n x n x n supercell) = n^3 E(cell), for a cell narrower than twice the cutoff."""
    s = random_triclinic(seed=7, n=2, scale=3.0)
    heights = 1.0 / np.linalg.norm(np.linalg.inv(s.cell), axis=0)
    assert heights.max() < pot64.cutoff  # every width < cutoff (< 2 cutoff): several images per neighbour
    import ase

    a = ase.Atoms(numbers=s.numbers, positions=s.positions, cell=s.cell, pbc=True)
    n = 2
    big = eqlr_jax.Structure.from_ase(a.repeat(n))
    _, e1 = run(pot64, s)
    _, e8 = run(pot64, big)
    assert abs(e8["energy"][0] - n**3 * e1["energy"][0]) <= 1e-10 * abs(n**3 * e1["energy"][0])
    np.testing.assert_allclose(e8["stress"][0], e1["stress"][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e8["forces"][: s.n_atoms], e1["forces"][: s.n_atoms], rtol=1e-9, atol=1e-12)


def _energy(pot, s):
    return run(pot, s, stress=False)[1]["energy"][0]


def test_forces_and_stress_match_finite_differences(pot64, cell_structure):
    s = cell_structure
    _, out = run(pot64, s)
    h = 1e-5
    fd = np.zeros((s.n_atoms, 3))
    for i in range(s.n_atoms):
        for a in range(3):
            p, m = s.positions.copy(), s.positions.copy()
            p[i, a] += h
            m[i, a] -= h
            fd[i, a] = -(_energy(pot64, dataclasses.replace(s, positions=p))
                         - _energy(pot64, dataclasses.replace(s, positions=m))) / (2 * h)
    np.testing.assert_allclose(out["forces"][: s.n_atoms], fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
    vol = abs(np.linalg.det(s.cell))
    fd_s = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h / 2 if a != b else h
            def strained(e):
                D = np.eye(3) + e
                return dataclasses.replace(s, positions=s.positions @ D, cell=s.cell @ D)
            fd_s[a, b] = (_energy(pot64, strained(eps)) - _energy(pot64, strained(-eps))) / (2 * h) / vol
    np.testing.assert_allclose(out["stress"][0], fd_s, rtol=1e-6, atol=1e-6 * np.abs(fd_s).max())
    np.testing.assert_allclose(out["virial"][0], -fd_s * vol, rtol=1e-6, atol=1e-6 * np.abs(fd_s).max() * vol)


def test_padded_batch_equals_single_structures(pot64, cell_structure):
    others = [random_triclinic(seed=11, n=3, scale=3.5),
              eqlr_jax.Structure(np.array([[0.0, 0, 0], [1.9, 0.3, 0], [0.2, 2.1, 0.4]]), [11, 17, 19],
                                 None, False)]
    batch = [cell_structure] + others
    g, out = run(pot64, batch)
    offset = 0
    for k, s in enumerate(batch):
        _, single = run(pot64, s)
        n = s.n_atoms
        np.testing.assert_allclose(out["energy"][k], single["energy"][0], rtol=1e-12)
        np.testing.assert_allclose(out["forces"][offset:offset + n], single["forces"][:n], rtol=1e-10,
                                   atol=1e-13)
        np.testing.assert_allclose(out["stress"][k], single["stress"][0], rtol=1e-10, atol=1e-14)
        offset += n
    # padding: zero outputs, and finite gradients of everything w.r.t. params and positions
    assert not np.asarray(g.node_mask)[offset:].any() and (out["forces"][offset:] == 0).all()
    assert out["energy"][-1] == 0

    def loss(params, positions):
        o = eqlr_jax.potential.predict(pot64.config, params, dataclasses.replace(g, positions=positions))
        return jnp.sum(o["energy"] ** 2) + jnp.sum(o["forces"] ** 2) + jnp.sum(o["stress"] ** 2)

    gp, gx = jax.grad(loss, argnums=(0, 1))(pot64.params, g.positions)
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(gp))
    assert np.isfinite(gx).all()


def test_recompiles_at_most_once_for_similar_structures(pot64):
    """Ten structures of similar size through bucketed capacities: at most one new trace."""
    import ase.build

    structures = []
    for k in range(10):
        # second neighbour shell at 3.89-3.91 Å, safely inside r_max = 4 Å
        a = ase.build.bulk("NaCl", "rocksalt", a=5.50 + 0.003 * k, cubic=True).repeat(2)
        if k % 3 == 0:
            del a[-1]  # different atom counts
        a.rattle(0.05, seed=k)
        structures.append(eqlr_jax.Structure.from_ase(a))
    # one capacity for the set, as a data loader or the calculator would hold it
    caps = [pot64.graph(s)[1] for s in structures]
    cap = caps[0]
    for c in caps[1:]:
        cap = cap.union(c)
    assert len(set(caps)) <= 2, caps  # bucketing maps similar sizes to the same capacity
    before = trace_count()
    for s in structures:
        g, _ = pot64.graph(s, capacity=cap, dtype=np.float64)
        jax.block_until_ready(pot64(g))
    assert trace_count() - before <= 1


def test_float32_runs_and_agrees(pot64, cell_structure):
    g32, _ = pot64.graph(cell_structure, capacity=CAP, dtype=np.float32)
    out32 = pot64(g32)
    assert out32["energy"].dtype == jnp.float32 and out32["forces"].dtype == jnp.float32
    _, out64 = run(pot64, cell_structure)
    np.testing.assert_allclose(np.asarray(out32["energy"][0]), out64["energy"][0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out32["forces"]), out64["forces"], atol=1e-4)


def test_unknown_element(pot64):
    s = eqlr_jax.Structure([[0, 0, 0], [2.0, 0, 0]], [11, 29], None, False)
    with pytest.raises(eqlr_jax.graph.UnknownElementError, match="element Cu .* not known .* Na, Cl, K"):
        pot64.graph(s)


def test_capacity_overflow_is_reported(pot64, cell_structure):
    with pytest.raises(eqlr_jax.graph.CapacityError, match="edges"):
        pot64.graph(cell_structure, capacity=Capacity(48, 10, 2))


def test_hessian_reverse_over_reverse_matches_finite_differences(pot64, cell_structure):
    """Second derivatives go through the hand-written backward pass of the convolution
    (``jax.jacrev`` of forces: phonons, force training)."""
    from eqlr_jax.potential import node_energies

    s = cell_structure
    g, _ = pot64.graph(s, capacity=CAP, dtype=np.float64)

    def energy(pos):
        return jnp.sum(node_energies(pot64.config, pot64.params, g, pos))

    forces = jax.jit(lambda pos: -jax.grad(energy)(pos))
    hess = np.asarray(jax.jit(jax.jacrev(jax.grad(energy)))(g.positions))[: s.n_atoms, :, : s.n_atoms, :]
    hess = hess.reshape(3 * s.n_atoms, 3 * s.n_atoms)
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-10 * np.abs(hess).max())
    h = 1e-5
    for i, a in [(0, 0), (2, 1), (5, 2)]:
        p, m = np.array(g.positions), np.array(g.positions)
        p[i, a] += h
        m[i, a] -= h
        fd = -(np.asarray(forces(p)) - np.asarray(forces(m)))[: s.n_atoms].reshape(-1) / (2 * h)
        np.testing.assert_allclose(hess[:, 3 * i + a], fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def test_vmap_over_an_ensemble_of_parameters(small_config, cell_structure):
    """An ensemble of parameter sets runs as one vmapped call (the convolution's hand-written
    backward pass batches too) and equals the members called one by one."""
    from eqlr_jax.potential import predict

    members = [eqlr_jax.Potential.init(small_config, seed=s, dtype=np.float64) for s in (3, 4)]
    stacked = jax.tree_util.tree_map(lambda *p: jnp.stack(p), *[m.params for m in members])
    g, _ = members[0].graph(cell_structure, capacity=CAP, dtype=np.float64)
    out = jax.jit(jax.vmap(lambda p: predict(small_config, p, g)))(stacked)
    for k, m in enumerate(members):
        ref = m(g)
        for key in ("energy", "forces", "stress"):
            np.testing.assert_allclose(out[key][k], ref[key], rtol=1e-10, atol=1e-12)


def test_init_has_the_network_parameter_tree(small_config):
    """Potential.init: the tree, shapes and dtypes of the network's own init, weights N(0, 1),
    scale and shift from the config; the same seed gives the same parameters."""
    from eqlr_jax.nn import NequIP

    cfg = dataclasses.replace(small_config, n_node_inputs=2)
    vec = jnp.asarray([[1.0, 0.2, -0.3], [-1.0, -0.2, 0.3]])
    idx = jnp.asarray([0, 1], jnp.int32)
    ref = NequIP(cfg).init(jax.random.PRNGKey(0), vec, jnp.zeros(2, jnp.int32), idx[::-1], idx, jnp.ones(2, bool),
                           jnp.zeros((2, 2)))
    pot = eqlr_jax.Potential.init(cfg, seed=5, dtype=np.float64)
    assert jax.tree_util.tree_structure(pot.params) == jax.tree_util.tree_structure(ref)
    for a, b in zip(jax.tree_util.tree_leaves(pot.params), jax.tree_util.tree_leaves(ref)):
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64
    p = pot.params["params"]
    np.testing.assert_array_equal(p["species_scale"], cfg.species_scale)
    np.testing.assert_array_equal(p["species_shift"], cfg.species_shift)
    weights = np.concatenate([np.ravel(w) for k, w in jax.tree_util.tree_leaves_with_path(pot.params)
                              if "species_" not in jax.tree_util.keystr(k)])
    assert weights.size > 500
    assert abs(weights.mean()) < 5 / np.sqrt(weights.size) and abs(weights.std() - 1) < 0.1
    same = eqlr_jax.Potential.init(cfg, seed=5, dtype=np.float64)
    other = eqlr_jax.Potential.init(cfg, seed=6, dtype=np.float64)
    for a, b in zip(jax.tree_util.tree_leaves(pot.params), jax.tree_util.tree_leaves(same.params)):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(jax.tree_util.tree_leaves(pot.params)[0], jax.tree_util.tree_leaves(other.params)[0])
