"""Ewald sum of Gaussian charges against independent oracles (float64).

Oracles: tabulated Madelung constants, a brute-force NumPy reciprocal-space sum written
here, independence of the splitting width, open-boundary NumPy sums, supercell
extensivity and central finite differences.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqlr_jax import electrostatics as es

KE = 14.399645478425668
_energy = jax.jit(es.ewald_energy)


def fresh_jit(fn):
    """A new jit wrapper (traces anew, so monkeypatched module constants take effect)."""
    return jax.jit(lambda *a: fn(*a))


# ----------------------------------------------------------------------------- oracles
def brute_reciprocal_energy(pos, cell, q, sig, kmax_rel=1e-18):
    """(2π/V) Σ_{k≠0} |Σ_i q_i e^{-σ_i²k²/2} e^{ik·r_i}|²/k² · k_e, summed over a full Miller box.

    This is the total energy of Gaussian charges in tin-foil boundary conditions with a uniform
    neutralising background (k = 0 dropped), self-interaction of each Gaussian included.
    """
    vol = abs(np.linalg.det(cell))
    recip = 2 * np.pi * np.linalg.inv(cell).T
    smin = sig.min()
    kcut = math.sqrt(-2 * math.log(kmax_rel)) / smin  # e^{-σ²k²} < kmax_rel² beyond
    nmax = np.ceil(kcut * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)
    axes = [np.arange(-m, m + 1) for m in nmax]
    n = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    n = n[np.any(n != 0, axis=1)]
    k = n @ recip
    k2 = np.sum(k * k, 1)
    rho = (q[None, :] * np.exp(-0.5 * k2[:, None] * sig[None, :] ** 2)
           * np.exp(1j * (k @ pos.T))).sum(1)
    return KE * 2 * np.pi / vol * np.sum(np.abs(rho) ** 2 / k2)


def madelung_structure(kind):
    """(cell, frac positions, charges, nearest-neighbour distance) for a = 1 Å."""
    if kind == "rocksalt":
        cell = np.eye(3)
        na = [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]
        cl = [[.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]]
        return cell, np.array(na + cl), np.array([1.] * 4 + [-1.] * 4), 0.5
    if kind == "cscl":
        return np.eye(3), np.array([[0, 0, 0], [.5, .5, .5]]), np.array([1., -1.]), math.sqrt(3) / 2
    if kind == "zincblende":
        fcc = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
        return np.eye(3), np.vstack([fcc, fcc + .25]), np.array([1.] * 4 + [-1.] * 4), math.sqrt(3) / 4
    raise ValueError(kind)


def random_cell(seed, n=6, sigma_range=(0.6, 1.2), net=0.0, scale=5.0):
    rng = np.random.default_rng(seed)
    cell = scale * (np.eye(3) + 0.2 * rng.standard_normal((3, 3)))
    pos = rng.random((n, 3)) @ cell + rng.normal(0, 0.3, (n, 3))  # some atoms outside the cell
    q = rng.normal(0, 1, n)
    q += (net - q.sum()) / n
    sig = rng.uniform(*sigma_range, n)
    return pos, cell, q, sig


def energy(pos, cell, q, sig, accuracy=1e-12, **kw):
    setup = es.prepare_ewald(cell, len(q), sig, accuracy, **kw)
    data = setup.build(pos)
    return float(_energy(pos, cell, sig, q, data)), setup


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind,constant", [("rocksalt", 1.74756459463318),
                                           ("cscl", 1.76267477307099),
                                           ("zincblende", 1.63805505338879)])
def test_madelung_constants(kind, constant):
    cell, frac, q, r0 = madelung_structure(kind)
    pos = frac @ cell
    e = es.coulomb_energy(pos, q, 0.0, cell, accuracy=1e-12)
    madelung = -e / (len(q) / 2) * r0 / KE
    assert abs(madelung / constant - 1) < 1e-8
    # a scaled cell with a = 5.64 Å gives the same constant
    e2 = es.coulomb_energy(5.64 * pos, q, 0.0, 5.64 * cell, accuracy=1e-12)
    assert abs(e2 * 5.64 / e - 1) < 1e-10


@pytest.mark.parametrize("net", [0.0, 0.7])
def test_eta_independence(net):
    pos, cell, q, sig = random_cell(1, net=net, sigma_range=(0.2, 0.9))
    vol = abs(np.linalg.det(cell))
    base = es.ewald_setup.default_eta(vol, len(q))
    es_ = [energy(pos, cell, q, sig, eta=f * base)[0] for f in (0.6, 1.0, 1.7)]
    assert abs(net - q.sum()) < 1e-12
    for e in es_[1:]:
        assert abs(e / es_[0] - 1) < 1e-9, es_


@pytest.mark.parametrize("seed,net", [(2, 0.0), (3, 0.7), (4, -1.3)])
def test_matches_brute_force_reciprocal_sum(seed, net):
    pos, cell, q, sig = random_cell(seed, net=net)
    ref = brute_reciprocal_energy(pos, cell, q, sig)
    e, _ = energy(pos, cell, q, sig)
    assert abs(e / ref - 1) < 1e-8, (e, ref)


def test_point_charge_self_images_in_small_cell():
    """A cell smaller than the real-space cutoff: many images of every atom, incl. self-images."""
    pos, cell, q, sig = random_cell(5, n=3, scale=2.5, sigma_range=(0.9, 1.0), net=0.4)
    ref = brute_reciprocal_energy(pos, cell, q, sig)
    e, setup = energy(pos, cell, q, sig)
    assert setup.r_cut > 2 * np.abs(np.linalg.det(cell)) ** (1 / 3)
    assert abs(e / ref - 1) < 1e-8


def _open_numpy(pos, q, sig):
    e = 0.0
    n = len(q)
    for i in range(n):
        if sig[i] > 0:
            e += q[i] ** 2 / (2 * math.sqrt(math.pi) * sig[i])
        for j in range(i + 1, n):
            r = np.linalg.norm(pos[i] - pos[j])
            g = math.sqrt(sig[i] ** 2 + sig[j] ** 2)
            e += q[i] * q[j] * (math.erf(r / (math.sqrt(2) * g)) if g > 0 else 1.0) / r
    return KE * e


def test_open_boundaries_match_numpy():
    rng = np.random.default_rng(6)
    pos = rng.normal(0, 2.0, (7, 3))
    q = rng.normal(0, 1, 7)
    sig = rng.uniform(0.3, 1.0, 7)
    sig[2] = 0.0  # one point charge: no self term
    assert abs(es.coulomb_energy(pos, q, sig) / _open_numpy(pos, q, sig) - 1) < 1e-12
    m = es.coulomb_matrix(pos, sig)
    assert np.allclose(m, m.T, rtol=0, atol=1e-12)
    assert abs(0.5 * q @ m @ q / _open_numpy(pos, q, sig) - 1) < 1e-12
    # blocked evaluation (large-N path) gives the same energy and potential
    e_blk = jax.jit(lambda *a: es.open_energy(*a, block_elements=10))(pos, sig, q)
    phi_blk = jax.jit(lambda *a: es.open_potential(*a, block_elements=10))(pos, sig, q)
    assert abs(float(e_blk) / _open_numpy(pos, q, sig) - 1) < 1e-12
    assert np.allclose(phi_blk, m @ q, rtol=1e-12, atol=1e-12)


def test_open_coincident_gaussians_are_finite():
    """r → 0 between two Gaussians: finite energy with a finite (zero) gradient."""
    pos = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    sig = jnp.array([0.5, 0.7, 0.6])
    q = jnp.array([1.0, -0.4, 0.2])
    e, g = jax.jit(jax.value_and_grad(es.open_energy))(pos, sig, q)
    gamma = math.sqrt(0.5**2 + 0.7**2)
    expect = _open_numpy(np.array(pos) + np.array([[0, 0, 0], [0, 0, 1e-7], [0, 0, 0]]), np.array(q), np.array(sig))
    assert np.isfinite(e) and np.all(np.isfinite(g))
    assert abs(float(e) / expect - 1) < 1e-9
    assert abs(2 / (math.sqrt(2 * math.pi) * gamma) - float(es.open_matrix(pos, sig)[0, 1]) / KE) < 1e-12
    # the two coincident charges pull on nothing along z: the gradient there is exactly 0
    assert np.all(np.isfinite(jax.jit(jax.grad(lambda p: es.open_energy(p, sig * 0, q)))(pos)))


def test_open_boundary_limit_of_growing_box():
    """A neutral cluster without dipole in a growing cubic box tends to the open sum (tin foil)."""
    rng = np.random.default_rng(7)
    half = rng.normal(0, 1.0, (4, 3))
    pos = np.vstack([half, -half])  # inversion-symmetric: zero dipole
    qh = rng.normal(0, 1, 4)
    q = np.concatenate([qh, qh])
    q -= q.mean()
    sig = np.full(8, 0.5)
    ref = _open_numpy(pos, q, sig)
    errs = []
    for box in (15.0, 30.0, 60.0):
        e = es.coulomb_energy(pos + box / 2, q, sig, np.eye(3) * box, accuracy=1e-10)
        errs.append(abs(e - ref))
    # without a dipole the leading error is the quadrupole term ∝ 1/L³ (2π Σ q r²/(3V) structure)
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 2e-3 * abs(ref)
    assert errs[1] / errs[2] > 5.0  # at least ~L³ convergence (8× per doubling)


@pytest.mark.parametrize("net", [0.0, 0.7])
def test_supercell_is_extensive(net):
    pos, cell, q, sig = random_cell(8, n=4, net=net)
    e1, _ = energy(pos, cell, q, sig)
    shifts = np.array([[a, b, c] for a in range(2) for b in range(2) for c in range(2)]) @ cell
    pos8 = (pos[None] + shifts[:, None]).reshape(-1, 3)
    e8, _ = energy(pos8, 2 * cell, np.tile(q, 8), np.tile(sig, 8))
    assert abs(e8 / (8 * e1) - 1) < 1e-9


def _setup_and_fns(pos, cell, q, sig, accuracy=1e-12):
    setup = es.prepare_ewald(cell, len(q), sig, accuracy)
    data = setup.build(pos)
    return setup, data


@pytest.mark.parametrize("net", [0.0, 0.7])
def test_forces_and_stress_match_finite_differences(net):
    pos, cell, q, sig = random_cell(9, n=5, net=net, sigma_range=(0.3, 0.8))
    sig[0] = 0.0  # mix in a point charge
    setup, data = _setup_and_fns(pos, cell, q, sig)

    @jax.jit
    def e_fn(p, c):
        return es.ewald_energy(p, c, sig, q, data)

    gp, gc = jax.grad(e_fn, argnums=(0, 1))(pos, cell)
    forces = -np.asarray(gp)
    h = 1e-5
    fd = np.zeros_like(pos)
    for a in range(len(q)):
        for d in range(3):
            dp = np.zeros_like(pos)
            dp[a, d] = h
            fd[a, d] = -(float(e_fn(pos + dp, cell)) - float(e_fn(pos - dp, cell))) / (2 * h)
    assert np.max(np.abs(forces - fd)) < 1e-6 * np.max(np.abs(fd))

    # stress: σ = (1/V) ∂E/∂ε for x → x(1 + ε) applied to positions and cell (ASE sign)
    vol = abs(np.linalg.det(cell))

    def strained(eps):
        f = np.eye(3) + eps
        return float(e_fn(pos @ f, cell @ f))

    fd_stress = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            de = np.zeros((3, 3))
            de[a, b] = h
            fd_stress[a, b] = (strained(de) - strained(-de)) / (2 * h) / vol
    # autodiff stress from the cell and position gradients: (Rᵀ ∂E/∂R + Cᵀ ∂E/∂C)/V
    ad_stress = (pos.T @ np.asarray(gp) + cell.T @ np.asarray(gc)) / vol
    assert np.max(np.abs(ad_stress - fd_stress)) < 1e-6 * np.max(np.abs(fd_stress))


@pytest.mark.parametrize("net", [0.0, 0.7])
def test_potential_is_charge_gradient_and_matrix_consistent(net):
    pos, cell, q, sig = random_cell(10, n=6, net=net)
    sig[1] = 0.0
    setup, data = _setup_and_fns(pos, cell, q, sig)
    e, gq = jax.jit(jax.value_and_grad(es.ewald_energy, argnums=3))(pos, cell, sig, q, data)
    phi = fresh_jit(es.ewald_potential)(pos, cell, sig, q, data)
    m = np.asarray(fresh_jit(es.ewald_matrix)(pos, cell, sig, data))
    op = fresh_jit(es.ewald_operator)(pos, cell, sig, data)
    assert np.allclose(gq, phi, rtol=1e-11, atol=1e-11)
    assert np.allclose(m @ q, phi, rtol=1e-11, atol=1e-10)
    assert np.allclose(jax.jit(lambda o, x: o.matvec(x))(op, jnp.asarray(q)), phi, rtol=1e-11, atol=1e-10)
    assert np.allclose(m, m.T, atol=1e-11)
    assert abs(0.5 * q @ m @ q / float(e) - 1) < 1e-11
    # linear in q
    q2 = np.random.default_rng(0).normal(size=len(q))
    phi2 = fresh_jit(es.ewald_potential)(pos, cell, sig, q2, data)
    both = fresh_jit(es.ewald_potential)(pos, cell, sig, 2 * q + 3 * q2, data)
    assert np.allclose(both, 2 * phi + 3 * phi2, atol=1e-10)


def test_sigma_and_widths_are_differentiable():
    pos, cell, q, sig = random_cell(11, n=4)
    setup, data = _setup_and_fns(pos, cell, q, sig)
    g = jax.jit(jax.grad(es.ewald_energy, argnums=2))(pos, cell, sig, q, data)
    h = 1e-6
    for a in range(4):
        ds = np.zeros(4)
        ds[a] = h
        fd = (float(_energy(pos, cell, sig + ds, q, data))
              - float(_energy(pos, cell, sig - ds, q, data))) / (2 * h)
        assert abs(float(g[a]) - fd) < 1e-6 * max(1.0, abs(fd))


def test_chunked_reciprocal_paths(monkeypatch):
    pos, cell, q, sig = random_cell(12, n=5, net=0.3)
    setup, data = _setup_and_fns(pos, cell, q, sig)
    e = float(fresh_jit(es.ewald_energy)(pos, cell, sig, q, data))
    phi = np.asarray(fresh_jit(es.ewald_potential)(pos, cell, sig, q, data))
    g = np.asarray(fresh_jit(jax.grad(es.ewald_energy))(pos, cell, sig, q, data))
    monkeypatch.setattr(es.ewald, "RECIP_CHUNK_ELEMENTS", 64)
    assert abs(float(fresh_jit(es.ewald_energy)(pos, cell, sig, q, data)) / e - 1) < 1e-12
    assert np.allclose(fresh_jit(es.ewald_potential)(pos, cell, sig, q, data), phi, atol=1e-11)
    assert np.allclose(fresh_jit(jax.grad(es.ewald_energy))(pos, cell, sig, q, data), g, atol=1e-10)


def test_float32_works():
    cell, frac, q, r0 = madelung_structure("rocksalt")
    pos = 5.64 * frac
    cell = 5.64 * cell
    e64 = es.coulomb_energy(pos, q, 0.0, cell)
    with jax.enable_x64(False):
        setup = es.prepare_ewald(cell, 8, 0.0, 1e-6)
        data = setup.build(pos)
        e32 = fresh_jit(es.ewald_energy)(jnp.asarray(pos, jnp.float32), jnp.asarray(cell, jnp.float32), 0.0,
                              jnp.asarray(q, jnp.float32), data)
        assert e32.dtype == jnp.float32
    assert abs(float(e32) / e64 - 1) < 1e-5


def test_ewald_coincident_gaussians_are_finite():
    """Two Gaussians on top of each other in a periodic cell: finite energy and gradient, equal to
    the brute-force reciprocal sum (which has no r = 0 singularity at all)."""
    pos, cell, q, sig = random_cell(13, n=4, net=0.3, sigma_range=(0.7, 1.0))
    pos[1] = pos[0]
    e, setup = energy(pos, cell, q, sig)
    data = setup.build(pos)
    g = jax.jit(jax.grad(es.ewald_energy))(pos, cell, sig, q, data)
    assert np.all(np.isfinite(g))
    assert abs(e / brute_reciprocal_energy(pos, cell, q, sig) - 1) < 1e-8
