"""QEq against a NumPy bordered-solve oracle, dense against CG, flat batches, implicit derivatives
against finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqlr_jax import electrostatics as es
from eqlr_jax import qeq

from helpers import fd_grad
from test_electrostatics_flat import _batch, _open_brute, _reference_matrix, _systems


def _oracle(m, chi, hard, q_tot):
    """Charges from the bordered system [[M + diag J, 1], [1ᵀ, 0]] [q, λ] = [−χ, Q] (NumPy)."""
    n = len(chi)
    k = np.zeros((n + 1, n + 1))
    k[:n, :n] = m + np.diag(hard)
    k[:n, n] = k[n, :n] = 1.0
    x = np.linalg.solve(k, np.concatenate([-chi, [q_tot]]))
    return x[:n]


def _molecule(seed=0, n=7):
    rng = np.random.default_rng(seed)
    pos = rng.normal(0, 1.8, (n, 3))
    return pos, rng.normal(0, 2.0, n), rng.uniform(2.0, 6.0, n), rng.uniform(0.5, 1.2, n)


@pytest.mark.parametrize("q_tot", [0.0, 1.0, -0.7])
def test_open_charges_match_bordered_oracle(q_tot):
    pos, chi, hard, sig = _molecule()
    q, e = qeq.equilibrate(pos, chi, hard, sig, q_tot)
    q = np.asarray(q)
    m = _open_brute(pos, sig)
    ref = _oracle(m, chi, hard, q_tot)
    np.testing.assert_allclose(q, ref, rtol=0, atol=1e-10)
    assert abs(q.sum() - q_tot) < 1e-12
    mu = chi + hard * q + m @ q  # ∂E_QEq/∂q_i: one chemical potential
    assert np.ptp(mu) < 1e-9
    np.testing.assert_allclose(float(e), chi @ q + 0.5 * hard @ q**2 + 0.5 * q @ m @ q, rtol=1e-12)


@pytest.mark.parametrize("q_tot", [0.0, 1.3])
def test_periodic_charges_match_bordered_oracle(q_tot):
    s = _systems(5)[1]
    rng = np.random.default_rng(6)
    chi, hard = rng.normal(0, 2.0, len(s["pos"])), rng.uniform(2.0, 6.0, len(s["pos"]))
    q, e = qeq.equilibrate(s["pos"], chi, hard, s["sig"], q_tot, cell=s["cell"], accuracy=1e-10)
    q = np.asarray(q)
    m = _reference_matrix(s)
    np.testing.assert_allclose(q, _oracle(m, chi, hard, q_tot), rtol=0, atol=1e-10)
    assert abs(q.sum() - q_tot) < 1e-12
    assert np.ptp(chi + hard * q + m @ q) < 1e-9


def _flat_problem(seed=0, q_tot=(0.4, -1.0, 0.0)):
    systems = _systems(seed)
    pos, cell, sig, ng, mask, data, offsets = _batch(systems)
    n = pos.shape[0]
    rng = np.random.default_rng(seed + 10)
    chi = jnp.asarray(rng.normal(0, 2.0, n))
    hard = jnp.asarray(rng.uniform(2.0, 6.0, n))
    qt = jnp.asarray(list(q_tot) + [0.0])
    return systems, offsets, pos, cell, sig, ng, mask, data, chi, hard, qt


@pytest.mark.parametrize("solver", ["dense", "cg"])
def test_flat_batch_equals_one_by_one(solver):
    systems, offsets, pos, cell, sig, ng, mask, data, chi, hard, qt = _flat_problem()
    op = es.flat_operator(pos, cell, sig, ng, mask, data)
    res = qeq.solve(op, chi, hard, qt, solver=solver, tol=1e-13)
    q = np.asarray(res.charges)
    assert bool(res.converged)
    assert float(res.residual) < 1e-9
    if solver == "cg":
        assert 0 < int(res.iterations) < 100
    n_real = sum(len(s["pos"]) for s in systems)
    assert np.all(q[n_real:] == 0)
    for g, (s, off) in enumerate(zip(systems, offsets)):
        k = len(s["pos"])
        ref = _oracle(_reference_matrix(s), np.asarray(chi[off:off + k]), np.asarray(hard[off:off + k]),
                      float(qt[g]))
        np.testing.assert_allclose(q[off:off + k], ref, rtol=0, atol=1e-9)
        mu = np.asarray(chi[off:off + k]) + np.asarray(hard[off:off + k]) * q[off:off + k] \
            + _reference_matrix(s) @ q[off:off + k]
        np.testing.assert_allclose(mu, -0.0 + float(res.chemical_potential[g]), atol=1e-8)


def test_cg_warm_start_and_iteration_limit():
    _, _, pos, cell, sig, ng, mask, data, chi, hard, qt = _flat_problem(1)
    op = es.flat_operator(pos, cell, sig, ng, mask, data)
    cold = qeq.solve(op, chi, hard, qt, solver="cg", tol=1e-12)
    warm = qeq.solve(op, chi, hard, qt, solver="cg", tol=1e-12, guess=cold.charges)
    assert int(warm.iterations) <= 1 < int(cold.iterations)
    np.testing.assert_allclose(warm.charges, cold.charges, atol=1e-11)
    stuck = qeq.solve(op, chi, hard, qt, solver="cg", tol=1e-12, max_iter=2)
    assert not bool(stuck.converged) and int(stuck.iterations) == 2
    assert float(stuck.residual) > 1e-6  # reported, not hidden


@pytest.mark.parametrize("solver", ["dense", "cg"])
def test_implicit_gradients_match_finite_differences(solver):
    """d/d(positions, cell, χ, J, σ) of a charge-dependent scalar and of E_QEq, through the solve."""
    _, _, pos, cell, sig, ng, mask, data, chi, hard, qt = _flat_problem(2)
    w = jnp.asarray(np.random.default_rng(9).normal(size=pos.shape[0]))

    def target(p, c, x, j, s):
        op = es.flat_operator(p, c, s, ng, mask, data)
        q = qeq.solve(op, x, j, qt, solver=solver, tol=1e-14).charges
        e_qeq, _ = qeq.qeq_energies(op, x, j, q)
        return jnp.sum(w * q) + 0.1 * jnp.sum(e_qeq)

    args = (pos, cell, chi, hard, sig)
    grads = jax.grad(target, argnums=range(5))(*args)
    target_jit = jax.jit(target)
    for k, (a, g) in enumerate(zip(args, grads)):
        def f(x, k=k):
            new = list(args)
            new[k] = jnp.asarray(x)
            return float(target_jit(*new))
        fd = fd_grad(f, a)
        scale = np.abs(fd).max()
        assert scale > 1e-3
        np.testing.assert_allclose(np.asarray(g), fd, rtol=0, atol=1e-6 * scale)


def test_second_derivative_through_the_solve():
    """d/dχ of the forces (training on forces) against finite differences of the forces."""
    _, _, pos, cell, sig, ng, mask, data, chi, hard, qt = _flat_problem(3)

    def energy(p, x):
        op = es.flat_operator(p, cell, sig, ng, mask, data)
        q = qeq.solve(op, x, hard, qt, solver="cg", tol=1e-14).charges
        return jnp.sum(op.energies(q)) + jnp.sum(jnp.sin(q))  # E depends on q beyond E_QEq

    def force_loss(x):
        f = -jax.grad(energy)(pos, x)
        return jnp.sum(f * f)

    g = jax.grad(force_loss)(chi)
    loss_jit = jax.jit(force_loss)
    fd = fd_grad(lambda x: float(loss_jit(jnp.asarray(x))), chi)
    scale = np.abs(fd).max()
    assert scale > 1e-3
    np.testing.assert_allclose(np.asarray(g), fd, rtol=0, atol=1e-6 * scale)


def test_equilibrate_bad_input():
    pos, chi, hard, sig = _molecule()
    with pytest.raises(ValueError, match="hardness"):
        qeq.equilibrate(pos, chi, -hard, sig, 0.0)
    with pytest.raises(ValueError, match="chi"):
        qeq.equilibrate(pos, chi[:3], hard, sig, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        qeq.equilibrate(np.where(np.arange(7)[:, None] == 2, np.nan, pos), chi, hard, sig, 0.0)
    with pytest.raises(ValueError, match="solver"):
        qeq.solve(None, jnp.zeros(3), jnp.ones(3), jnp.zeros(1), solver="lu")


def test_equilibrate_is_differentiable_in_chi_for_a_molecule():
    pos, chi, hard, sig = _molecule(4)
    g = jax.grad(lambda x: qeq.equilibrate(pos, x, hard, sig, 1.0)[1])(jnp.asarray(chi))
    q, _ = qeq.equilibrate(pos, chi, hard, sig, 1.0)
    np.testing.assert_allclose(g, q, atol=1e-10)  # dE_QEq/dχ = q at the minimum (envelope theorem)
