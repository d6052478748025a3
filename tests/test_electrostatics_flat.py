"""Flat batches of open, periodic and slab structures against the single-structure Ewald code and
NumPy brute force (float64)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqlr_jax import electrostatics as es
from eqlr_jax.electrostatics.flat import flat_matrix, flat_operator
from eqlr_jax.electrostatics.flat_setup import assemble_flat_data, structure_parts

KE = 14.399645478425668


def _open_brute(pos, sig):
    """Dense open-boundary Gaussian Coulomb matrix, NumPy, straight from the formula."""
    from scipy.special import erf

    n = len(pos)
    m = np.zeros((n, n))
    for a in range(n):
        m[a, a] = 1.0 / (math.sqrt(math.pi) * sig[a])
        for b in range(n):
            if a != b:
                r = np.linalg.norm(pos[a] - pos[b])
                m[a, b] = erf(r / (math.sqrt(2.0) * math.hypot(sig[a], sig[b]))) / r
    return KE * m


def _systems(seed=0):
    rng = np.random.default_rng(seed)
    mol = dict(pos=rng.normal(0, 2.0, (5, 3)), cell=np.zeros((3, 3)), pbc=np.zeros(3, bool),
               sig=rng.uniform(0.5, 1.2, 5))
    cell = 6.0 * (np.eye(3) + 0.2 * rng.standard_normal((3, 3)))
    per = dict(pos=rng.random((6, 3)) @ cell, cell=cell, pbc=np.ones(3, bool), sig=rng.uniform(0.4, 1.0, 6))
    slab_cell = np.array([[7.0, 0.0, 0.0], [1.5, 6.5, 0.0], [0.0, 0.0, 30.0]])
    frac = rng.random((4, 3)) * [1, 1, 0.15]
    slab = dict(pos=frac @ slab_cell, cell=slab_cell, pbc=np.array([True, True, False]),
                sig=rng.uniform(0.4, 1.0, 4))
    return [mol, per, slab]


def _batch(systems, accuracy=1e-10, pad_nodes=2, pad_pairs=7, pad_k=5):
    parts = [structure_parts(s["pos"], s["cell"], s["pbc"], math.sqrt(2) * s["sig"].max(), accuracy)
             for s in systems]
    sizes = [len(s["pos"]) for s in systems]
    offsets = np.cumsum([0] + sizes[:-1])
    n = sum(sizes) + pad_nodes
    g = len(systems) + 1
    data = assemble_flat_data(parts, offsets, sum(len(p.i) for p in parts) + pad_pairs,
                              sum(len(p.miller) for p in parts) + pad_k, g, np.float64)
    pos = np.zeros((n, 3))
    sig = np.full(n, 0.7)
    node_graph = np.full(n, g - 1, np.int32)
    mask = np.zeros(n, bool)
    cell = np.zeros((g, 3, 3))
    for k, (s, off) in enumerate(zip(systems, offsets)):
        m = len(s["pos"])
        pos[off:off + m], sig[off:off + m], node_graph[off:off + m], mask[off:off + m] = s["pos"], s["sig"], k, True
        cell[k] = s["cell"]
    data = jax.tree_util.tree_map(jnp.asarray, data)
    return jnp.asarray(pos), jnp.asarray(cell), jnp.asarray(sig), jnp.asarray(node_graph), jnp.asarray(mask), data, offsets


def _reference_matrix(s, accuracy=1e-10):
    if not s["pbc"].any():
        return _open_brute(s["pos"], s["sig"])
    slab_axis = None if s["pbc"].all() else int(np.flatnonzero(~s["pbc"])[0])
    return es.coulomb_matrix(s["pos"], s["sig"], s["cell"], accuracy=accuracy, slab_axis=slab_axis)


def test_flat_matrix_and_matvec_match_single_structures():
    systems = _systems()
    pos, cell, sig, ng, mask, data, offsets = _batch(systems)
    op = flat_operator(pos, cell, sig, ng, mask, data)
    m = np.asarray(flat_matrix(op))
    n_real = sum(len(s["pos"]) for s in systems)
    assert np.all(m[n_real:] == 0) and np.all(m[:, n_real:] == 0)
    for s, off in zip(systems, offsets):
        k = len(s["pos"])
        ref = _reference_matrix(s)
        np.testing.assert_allclose(m[off:off + k, off:off + k], ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
        # no coupling to the other structures
        others = np.delete(np.arange(m.shape[0]), np.arange(off, off + k))
        assert np.all(m[off:off + k][:, others] == 0)
    q = np.random.default_rng(1).normal(size=m.shape[0]) * np.asarray(mask)
    np.testing.assert_allclose(np.asarray(op.matvec(jnp.asarray(q))), m @ q, rtol=1e-10, atol=1e-10)
    dense = flat_operator(pos, cell, sig, ng, mask, data, dense_real=True)  # pair terms as a matrix
    np.testing.assert_allclose(np.asarray(dense.matvec(jnp.asarray(q))), m @ q, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(flat_matrix(dense)), m, rtol=1e-12, atol=1e-12)
    e = np.asarray(op.energies(jnp.asarray(q)))
    for gi, (s, off) in enumerate(zip(systems, offsets)):
        k = len(s["pos"])
        qs = q[off:off + k]
        np.testing.assert_allclose(e[gi], 0.5 * qs @ _reference_matrix(s) @ qs, rtol=1e-8)
    assert e[-1] == 0.0


def test_flat_energy_gradients_match_single_structure_ewald():
    """Forces and cell gradient of a charged triclinic cell equal those of the Ewald module."""
    s = _systems(2)[1]
    pos, cell, sig, ng, mask, data, offsets = _batch([s], pad_nodes=1)
    q = np.random.default_rng(3).normal(size=pos.shape[0]) * np.asarray(mask)
    q[0] += 0.3  # net charge: the background term depends on the cell

    def flat_e(p, c):
        return es.flat_energy(p, c, sig, jnp.asarray(q), ng, mask, data)[0]

    gp, gc = jax.grad(flat_e, argnums=(0, 1))(pos, cell)
    setup = es.prepare_ewald(s["cell"], len(s["pos"]), s["sig"], 1e-10)
    d = setup.build(s["pos"])
    n = len(s["pos"])
    ref_gp, ref_gc = jax.grad(lambda p, c: es.ewald_energy(p, c, s["sig"], q[:n], d), argnums=(0, 1))(
        jnp.asarray(s["pos"]), jnp.asarray(s["cell"]))
    np.testing.assert_allclose(gp[:n], ref_gp, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gc[0], ref_gc, rtol=1e-7, atol=1e-8)
    assert np.all(np.asarray(gp[n:]) == 0)
    np.testing.assert_allclose(float(flat_e(pos, cell)), float(es.ewald_energy(s["pos"], s["cell"], s["sig"], q[:n], d)),
                               rtol=1e-10)


def test_wire_and_singular_slab_cells_are_rejected():
    pos = np.zeros((2, 3)) + [[0, 0, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="wire"):
        structure_parts(pos, 5 * np.eye(3), [True, False, False], 1.0)
    cell = np.diag([5.0, 5.0, 0.0])
    with pytest.raises(ValueError, match="vacuum"):
        structure_parts(pos, cell, [True, True, False], 1.0)


def test_operator_diagonal_is_the_matrix_diagonal():
    pos, cell, sig, ng, mask, data, _ = _batch(_systems(4))
    op = flat_operator(pos, cell, sig, ng, mask, data)
    np.testing.assert_allclose(np.asarray(op.diagonal()), np.diag(np.asarray(flat_matrix(op))), rtol=1e-12, atol=1e-12)
