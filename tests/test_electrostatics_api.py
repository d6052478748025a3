"""Static shapes, batching, overflow reporting, slab correction and bad input of the Ewald code."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqlr_jax import electrostatics as es

from test_electrostatics_ewald import KE, brute_reciprocal_energy, random_cell


def test_static_shapes_new_positions_and_cell_do_not_retrace():
    pos, cell, q, sig = random_cell(20, n=6, net=0.2)
    setup = es.prepare_ewald(cell, 6, sig, 1e-8, k_margin=1.2, pair_margin=2.0)
    traces = []

    @jax.jit
    def e_fn(p, c, d):
        traces.append(1)
        return es.ewald_energy(p, c, sig, q, d)

    rng = np.random.default_rng(0)
    for step in range(6):
        strain = np.eye(3) + 0.01 * step * np.diag([1.0, -0.5, 0.3])
        c = cell @ strain
        p = pos @ strain + rng.normal(0, 0.05, pos.shape)
        data = setup.build(p, c)
        e = float(e_fn(p, c, data))
        ref = brute_reciprocal_energy(p, c, q, sig)
        assert abs(e / ref - 1) < 1e-7
        assert not bool(es.ewald_overflow(c, data))
    assert len(traces) == 1


def test_kvector_overflow_is_reported():
    pos, cell, q, sig = random_cell(21, n=4)
    setup = es.prepare_ewald(cell, 4, sig, 1e-8)  # no k margin
    grown = 1.1 * cell  # reciprocal vectors shrink: more of them fall within k_cut
    with pytest.raises(es.CapacityError, match="k-vector"):
        setup.build(1.1 * pos, grown)
    data = setup.build(1.1 * pos, grown, on_overflow="flag")
    assert bool(jax.jit(es.ewald_overflow)(grown, data))
    assert not bool(es.ewald_overflow(0.95 * cell, setup.build(0.95 * pos, 0.95 * cell)))
    assert not bool(es.ewald_overflow(cell, setup.build(pos)))


def test_pair_overflow_is_reported_not_dropped():
    import dataclasses

    pos, cell, q, sig = random_cell(22, n=6)
    setup = es.prepare_ewald(cell, 6, sig, 1e-8)
    n_pairs = int(setup.build(pos).pairs.n_found)
    small = dataclasses.replace(setup, pair_capacity=n_pairs - 5)
    with pytest.raises(es.CapacityError, match="capacity"):
        small.build(pos)
    data = small.build(pos, on_overflow="flag")
    assert int(data.pairs.n_found) == n_pairs
    assert bool(jax.jit(es.ewald_overflow)(cell, data))
    assert not bool(es.ewald_overflow(cell, setup.build(pos)))
    # prepare_ewald with positions sizes the list from the actual pairs (slabs, clusters)
    slab_cell = cell.copy()
    slab_cell[2] *= 6.0
    counted = es.prepare_ewald(slab_cell, 6, sig, 1e-8, positions=pos)
    assert counted.pair_capacity >= int(counted.build(pos).pairs.n_found)


@pytest.mark.parametrize("use_vmap", [True, False])
def test_batched_structures_with_different_cells(use_vmap):
    systems = [random_cell(30 + s, n=5, net=0.1 * s) for s in range(3)]
    cells = [s[1] for s in systems]
    sigs = [s[3] for s in systems]
    setups = es.prepare_ewald_batch(cells, 5, sigs, 1e-10)
    assert len({(s.pair_capacity, s.max_kvectors) for s in setups}) == 1
    datas = [st.build(s[0]) for st, s in zip(setups, systems)]
    single = [float(es.ewald_energy(s[0], s[1], s[3], s[2], d)) for s, d in zip(systems, datas)]
    for s, e in zip(systems, single):
        assert abs(e / brute_reciprocal_energy(s[0], s[1], s[2], s[3]) - 1) < 1e-8
    stacked = es.stack_ewald_data(datas)
    pos, cell, q, sig = (np.stack([s[k] for s in systems]) for k in range(4))
    if use_vmap:
        batched = jax.jit(jax.vmap(es.ewald_energy))(pos, cell, sig, q, stacked)
    else:
        batched = jax.lax.map(lambda t: es.ewald_energy(*t), (pos, cell, sig, q, stacked))
    assert np.allclose(batched, single, rtol=1e-12)


def test_padding_atoms_are_inert():
    pos, cell, q, sig = random_cell(40, n=5, net=0.5)
    e_ref = float(es.ewald_energy(pos, cell, sig, q, es.prepare_ewald(cell, 5, sig, 1e-10).build(pos)))
    pad = 3
    pos_p = np.vstack([pos, np.repeat(pos[-1:], pad, 0)])  # padding stacked on a real atom
    q_p = np.concatenate([q, np.full(pad, 7.0)])  # garbage charges on padding
    sig_p = np.concatenate([sig, np.zeros(pad)])
    mask = np.arange(5 + pad) < 5
    setup = es.prepare_ewald(cell, 5 + pad, sig_p, 1e-10)
    data = setup.build(pos_p, on_overflow="flag")
    e, g = jax.jit(jax.value_and_grad(es.ewald_energy))(pos_p, cell, sig_p, q_p, data, mask)
    assert abs(float(e) / e_ref - 1) < 1e-12
    assert np.all(np.isfinite(g)) and np.all(g[5:] == 0)
    phi = es.ewald_potential(pos_p, cell, sig_p, q_p, data, mask)
    assert np.all(phi[5:] == 0)


def test_slab_correction():
    rng = np.random.default_rng(50)
    cell = np.array([[6.0, 0, 0], [1.0, 5.5, 0], [0, 0, 30.0]])
    pos = np.column_stack([rng.random(6) * 5, rng.random(6) * 5, 5 + 3 * rng.random(6)])
    q = rng.normal(0, 1, 6)
    q -= q.mean()
    vol = abs(np.linalg.det(cell))
    # neutral point charges: (2π/V) M_z² with M_z the dipole along the normal of the a-b plane
    corr = float(es.slab_correction_energy(pos, cell, q, 0.0, axis=2))
    assert abs(corr / (KE * 2 * math.pi / vol * (q @ pos[:, 2]) ** 2) - 1) < 1e-12
    # the option in prepare_ewald adds exactly this term, consistently in E, phi and M
    plain = es.prepare_ewald(cell, 6, 0.0, 1e-10).build(pos)
    slab = es.prepare_ewald(cell, 6, 0.0, 1e-10, slab_axis=2).build(pos)
    e0 = float(es.ewald_energy(pos, cell, 0.0, q, plain))
    e1 = float(es.ewald_energy(pos, cell, 0.0, q, slab))
    assert abs((e1 - e0) / corr - 1) < 1e-10
    m = np.asarray(jax.jit(es.ewald_matrix)(pos, cell, 0.0, slab))
    assert abs(0.5 * q @ m @ q / e1 - 1) < 1e-10
    assert np.allclose(m @ q, jax.jit(es.ewald_potential)(pos, cell, 0.0, q, slab), atol=1e-9)
    # charged slab with Gaussian charges: origin independent along the normal
    qc = q + 0.15
    sig = rng.uniform(0.3, 0.8, 6)
    a = float(es.slab_correction_energy(pos, cell, qc, sig, axis=2))
    b = float(es.slab_correction_energy(pos + np.array([0, 0, 2.5]), cell, qc, sig, axis=2))
    assert abs(a - b) < 1e-9 * max(1, abs(a))
    g = jax.grad(lambda qq: es.slab_correction_energy(pos, cell, qq, sig, axis=2))(jnp.asarray(qc))
    assert np.allclose(g, es.slab_correction_potential(pos, cell, qc, sig, axis=2), atol=1e-10)


def test_slab_correction_reaches_the_2d_limit_faster():
    """A neutral dipolar slab: with more vacuum, E_3D + correction converges to the 2-D periodic limit."""
    rng = np.random.default_rng(51)
    ab = np.array([[5.0, 0, 0], [0, 5.0, 0]])
    pos = np.column_stack([rng.random(4) * 5, rng.random(4) * 5, 2.0 * rng.random(4)])
    q = np.array([1.0, -1.0, 0.6, -0.6])

    def e(h, slab):
        cell = np.vstack([ab, [0, 0, h]])
        return es.coulomb_energy(pos, q, 0.0, cell, 1e-10, slab_axis=2 if slab else None)

    ref = e(400.0, True)  # the corrected energy at very large vacuum as the 2-D reference
    err_plain = abs(e(40.0, False) - ref)
    err_slab = abs(e(40.0, True) - ref)
    assert err_slab < 0.05 * err_plain


@pytest.mark.parametrize("call,match", [
    (lambda: es.coulomb_energy(np.zeros((2, 3)) + [[0, 0, 0], [1, 0, 0]], [1.0, -1.0], 0.0,
                               np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]])), "singular"),
    (lambda: es.coulomb_energy([[0, 0, 0], [1, 0, 0]], [1.0, -1.0], [0.5, -0.1]), "sigmas must be >= 0"),
    (lambda: es.coulomb_energy([[0, 0, 0], [1, 0, 0]], [1.0, -1.0, 0.0], 0.5), "charges must have shape"),
    (lambda: es.coulomb_matrix([[0, 0, 0], [1, 0, np.nan]], 0.5), "NaN"),
    (lambda: es.coulomb_energy([[0, 0, 0], [1, 0, 0]], [1.0, -1.0], 0.5, np.eye(3) * 4, accuracy=2.0),
     "accuracy"),
    (lambda: es.prepare_ewald(np.eye(3) * 10, 100, 0.0, 1e-10, max_kvectors=10), "needs .* k-vectors"),
    (lambda: es.prepare_ewald(np.eye(3) * 10, 100, 0.0, 1e-10, pair_capacity=10), "pair_capacity"),
    (lambda: es.coulomb_energy([[0, 0, 0], [1, 0, 0]], [1.0, -1.0], 0.0, slab_axis=2), "periodic cell"),
])
def test_bad_input_gets_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_tracers_are_refused_by_the_convenience_functions():
    with pytest.raises(TypeError, match="prepare_ewald"):
        jax.grad(lambda p: es.coulomb_energy(p, jnp.array([1.0, -1.0]), 0.5))(jnp.array([[0., 0, 0], [1, 0, 0]]))


def test_default_accuracy_is_met():
    """The default parameter choice (accuracy 1e-6) is within 1e-6 of a converged reference."""
    pos, cell, q, sig = random_cell(60, n=8, net=0.0, sigma_range=(0.0, 0.0))
    setup = es.prepare_ewald(cell, 8, 0.0)
    assert setup.accuracy == 1e-6
    e = float(es.ewald_energy(pos, cell, 0.0, q, setup.build(pos)))
    ref = es.coulomb_energy(pos, q, 0.0, cell, accuracy=1e-14)
    assert abs(e / ref - 1) < 1e-6
