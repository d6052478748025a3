"""The NequIP-LR model, float64: forces and stress against finite differences, the work around a
closed loop, symmetry, flat batches, charge states, model files and the ASE calculator."""
import dataclasses
import json
import zipfile

import ase
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import eqlr_jax
from eqlr_jax import LRConfig, Potential, Runtime, Structure
from eqlr_jax.potential import node_energies, trace_count

from helpers import fd_grad, random_triclinic

CFG = LRConfig(species=("Na", "Cl", "K"), r_max=4.0, num_features=4, num_layers_charge=1, num_layers=1,
               radial_mlp_width=8, chi_hidden=8, charge_basis=4, avg_num_neighbors=10.0,
               hardness_init=(3.0, 4.0, 2.0), ewald_accuracy=1e-10, qeq_tol=1e-12,
               species_shift=(-1.0, -2.0, 0.5))


@pytest.fixture(scope="module")
def lr64():
    return Potential.init(CFG, seed=2, dtype=np.float64)


def molecule(seed=0, n=6, q=1.0):
    rng = np.random.default_rng(seed)
    pos = rng.normal(0, 1.6, (n, 3))
    return Structure(positions=pos, numbers=rng.choice([11, 17, 19], n), cell=None, pbc=False, total_charge=q)


def charged_cell(seed=4, q=-0.6):
    return dataclasses.replace(random_triclinic(seed=seed, n=6), total_charge=q)


def energy_fn(pot, graph):
    """E(positions, cell) summed over the batch, jitted (neighbour lists fixed)."""
    return jax.jit(lambda p, c: jnp.sum(node_energies(pot.config, pot.params, graph, p, c, pot.runtime)))


@pytest.mark.parametrize("runtime", [Runtime(), Runtime(qeq_solver="cg")], ids=["dense", "cg"])
@pytest.mark.parametrize("make", [molecule, charged_cell], ids=["molecule", "charged-cell"])
def test_forces_and_stress_match_finite_differences(lr64, make, runtime):
    pot = dataclasses.replace(lr64, runtime=runtime)
    s = make()
    g, _ = pot.graph(s, dtype=np.float64)
    out = pot(g)
    n = s.n_atoms
    e = energy_fn(pot, g)
    cell = np.asarray(g.cell)
    fd = fd_grad(lambda p: e(jnp.asarray(p), g.cell), np.asarray(g.positions))
    scale = np.abs(fd).max()
    assert scale > 1e-2
    np.testing.assert_allclose(np.asarray(out["forces"][:n]), -fd[:n], rtol=0, atol=1e-6 * scale)
    assert abs(float(out["energy"][0]) - float(e(g.positions, g.cell))) < 1e-10
    if s.pbc.all():
        def strained(eps):
            m = np.eye(3) + 0.5 * (eps + eps.T)
            return e(jnp.asarray(np.asarray(g.positions) @ m), jnp.asarray(cell @ m))
        dstrain = fd_grad(strained, np.zeros((3, 3)))
        stress = dstrain / abs(np.linalg.det(cell[0]))
        np.testing.assert_allclose(np.asarray(out["stress"][0]), stress, rtol=0, atol=1e-6 * np.abs(stress).max())
    else:
        np.testing.assert_allclose(np.asarray(out["dipole"][0]),
                                   np.asarray(out["charges"][:n]) @ s.positions, atol=1e-12)


def test_work_around_a_closed_loop_is_zero(lr64):
    """∮ F·dr of one atom around a circle: zero for a conservative force (trapezoid rule,
    spectrally accurate for a periodic integrand); a sizeable integral of |F·dr| shows the
    forces are not trivially small."""
    s = charged_cell()
    g, _ = lr64.graph(s, dtype=np.float64)
    force = jax.jit(jax.grad(lambda p: -jnp.sum(node_energies(CFG, lr64.params, g, p, g.cell))))
    base = np.asarray(g.positions)
    k = 64
    work = absolute = 0.0
    for t in np.linspace(0, 2 * np.pi, k, endpoint=False):
        r = np.array([np.cos(t), np.sin(t), 0.5 * np.sin(2 * t)]) * 0.15
        dr = np.array([-np.sin(t), np.cos(t), np.cos(2 * t)]) * 0.15 * (2 * np.pi / k)
        p = base.copy()
        p[2] += r
        f = np.asarray(force(jnp.asarray(p)))[2]
        work += f @ dr
        absolute += abs(f @ dr)
    assert absolute > 1e-3
    assert abs(work) < 1e-9 * absolute + 1e-12


def test_equivariance_and_permutation(lr64):
    s = molecule(3, n=7, q=-1.0)
    R = -Rotation.random(random_state=7).as_matrix()  # a rotation with a reflection
    t = np.array([3.0, -1.0, 2.0])
    perm = np.random.default_rng(1).permutation(s.n_atoms)
    s2 = Structure(s.positions[perm] @ R.T + t, s.numbers[perm], None, False, s.total_charge)
    a = lr64(lr64.graph(s, dtype=np.float64)[0])
    b = lr64(lr64.graph(s2, dtype=np.float64)[0])
    n = s.n_atoms
    assert abs(float(a["energy"][0] - b["energy"][0])) < 1e-10
    np.testing.assert_allclose(np.asarray(b["forces"][:n]), (np.asarray(a["forces"][:n]) @ R.T)[perm], atol=1e-9)
    np.testing.assert_allclose(np.asarray(b["charges"][:n]), np.asarray(a["charges"][:n])[perm], atol=1e-10)
    assert np.std(np.asarray(a["charges"][:n])) > 1e-3
    c = charged_cell()
    cell_rot = Structure(c.positions @ R.T + t, c.numbers, c.cell @ R.T, True, c.total_charge)
    a = lr64(lr64.graph(c, dtype=np.float64)[0])
    b = lr64(lr64.graph(cell_rot, dtype=np.float64)[0])
    assert abs(float(a["energy"][0] - b["energy"][0])) < 1e-9
    np.testing.assert_allclose(np.asarray(b["stress"][0]), R @ np.asarray(a["stress"][0]) @ R.T, atol=1e-9)
    np.testing.assert_allclose(np.asarray(b["charges"][:6]), np.asarray(a["charges"][:6]), atol=1e-10)


def test_flat_batch_equals_one_by_one_and_compiles_once(lr64):
    structures = [molecule(0), charged_cell(), molecule(1, n=4, q=0.0)]
    g, cap = lr64.graph(structures, dtype=np.float64)
    batch = lr64(g)
    off = 0
    for k, s in enumerate(structures):
        one = lr64(lr64.graph(s, dtype=np.float64)[0])
        n = s.n_atoms
        np.testing.assert_allclose(float(batch["energy"][k]), float(one["energy"][0]), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(batch["charges"][off:off + n]), np.asarray(one["charges"][:n]),
                                   atol=1e-10)
        np.testing.assert_allclose(np.asarray(batch["forces"][off:off + n]), np.asarray(one["forces"][:n]),
                                   atol=1e-9)
        assert abs(float(np.sum(one["charges"])) - s.total_charge) < 1e-12
        off += n
    assert np.all(np.asarray(batch["charges"][off:]) == 0)
    before = trace_count()
    rng = np.random.default_rng(5)
    for _ in range(3):  # new positions, same capacity: no retrace
        moved = [dataclasses.replace(s, positions=s.positions + rng.normal(0, 0.02, s.positions.shape))
                 for s in structures]
        lr64(lr64.graph(moved, capacity=cap, dtype=np.float64)[0])
    assert trace_count() == before


def test_total_charge_changes_energy_and_charges_but_not_for_sr():
    """Ag3 at one geometry with Q = +1 and Q = -1."""
    pos = np.array([[0.0, 0.0, 0.0], [2.7, 0.0, 0.0], [1.2, 2.4, 0.0]])
    ag = lambda q: Structure(pos, np.array([47, 47, 47]), None, False, q)  # noqa: E731
    cfg = LRConfig(species=("Ag",), r_max=4.0, num_features=4, num_layers_charge=1, num_layers=1,
                   radial_mlp_width=8, chi_hidden=8, charge_basis=4)
    lr = Potential.init(cfg, seed=0, dtype=np.float64)
    plus, minus = (lr(lr.graph(ag(q), dtype=np.float64)[0]) for q in (1.0, -1.0))
    assert abs(float(plus["energy"][0] - minus["energy"][0])) > 1e-2
    np.testing.assert_allclose(float(np.sum(plus["charges"])), 1.0, atol=1e-12)
    np.testing.assert_allclose(float(np.sum(minus["charges"])), -1.0, atol=1e-12)
    assert np.abs(np.asarray(plus["charges"][:3] - minus["charges"][:3])).min() > 0.1
    sr = Potential.init(dataclasses.replace(cfg, long_range=False), seed=0, dtype=np.float64)
    import eqlr_jax.potential as potential_module

    potential_module._WARNED["charged_sr"] = False
    with pytest.warns(UserWarning, match="ignores the total charge"):
        e_plus = sr.energy(sr.graph(ag(1.0), dtype=np.float64)[0])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: not again
        e_minus = sr.energy(sr.graph(ag(-1.0), dtype=np.float64)[0])
    assert float(e_plus[0]) == float(e_minus[0])


def carbon_chain(protonated: bool) -> Structure:
    """Linear C10H2 along x (alternating 1.21 / 1.37 Å bonds); protonated: one more H on C1, Q = +1."""
    xs = [0.0, 1.06]
    for k in range(9):
        xs.append(xs[-1] + (1.21 if k % 2 == 0 else 1.37))
    xs.append(xs[-1] + 1.06)
    pos = np.array([[x, 0.0, 0.0] for x in xs])
    numbers = [1] + [6] * 10 + [1]
    if protonated:
        pos = np.vstack([pos, [1.56, 0.96, 0.0]])
        numbers.append(1)
    return Structure(pos, np.array(numbers), None, False, 1.0 if protonated else 0.0)


def test_protonation_moves_charge_beyond_the_cutoff_only_with_long_range():
    """Fixed per-species χ and J (no stage-1 layers): the far H, 12 Å from the protonated end and
    far beyond r_max = 3 Å and the SR receptive field (2 x 3 Å), changes its charge with long
    range; the SR model's far atoms do not notice the protonation at all."""
    cfg = LRConfig(species=("H", "C"), r_max=3.0, num_features=4, num_layers_charge=0, num_layers=2,
                   radial_mlp_width=8, chi_hidden=4, charge_basis=4, chi_reference=(2.2, 2.55),
                   hardness_init=(6.0, 5.0))
    lr = Potential.init(cfg, seed=0, dtype=np.float64)
    neutral, protonated = carbon_chain(False), carbon_chain(True)
    a = lr(lr.graph(neutral, dtype=np.float64)[0])
    b = lr(lr.graph(protonated, dtype=np.float64)[0])
    far_h = 11
    assert np.linalg.norm(protonated.positions[far_h] - protonated.positions[-1]) > 11.0
    dq = float(b["charges"][far_h] - a["charges"][far_h])
    assert dq > 1e-2, dq  # a positive charge spreads to the far end
    sr = Potential.init(dataclasses.replace(cfg, long_range=False), seed=0, dtype=np.float64)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ea = sr(sr.graph(neutral, dtype=np.float64)[0])
        eb = sr(sr.graph(protonated, dtype=np.float64)[0])
    far = slice(8, 12)  # C8..C10 and the far H: more than 6 Å from the extra H
    np.testing.assert_allclose(np.asarray(ea["node_energies"][far]), np.asarray(eb["node_energies"][far]),
                               rtol=0, atol=1e-12)
    assert np.abs(np.asarray(a["node_energies"][far] - b["node_energies"][far])).max() > 1e-4


def test_qeq_non_convergence_is_an_error(lr64):
    s = charged_cell()
    stuck = dataclasses.replace(lr64, runtime=Runtime(qeq_solver="cg", qeq_max_iter=1))
    g, _ = stuck.graph(s, dtype=np.float64)
    with pytest.raises(eqlr_jax.QEqConvergenceError, match="did not converge"):
        stuck(g)
    atoms = ase.Atoms(numbers=s.numbers, positions=s.positions, cell=s.cell, pbc=True)
    atoms.calc = stuck.calculator(dtype="float64")
    with pytest.raises(eqlr_jax.QEqConvergenceError):
        atoms.get_potential_energy()


def test_graph_without_long_range_data_is_rejected(lr64):
    s = molecule()
    g, _ = eqlr_jax.build_graph(s, CFG.r_max, CFG.species, dtype=np.float64)  # short-range graph
    with pytest.raises(ValueError, match="no long-range data"):
        lr64(g)


def test_save_load_round_trip_and_format(tmp_path, lr64):
    path = tmp_path / "lr.eqlr"
    eqlr_jax.save(path, lr64)
    back = eqlr_jax.load(path)
    assert back.config == lr64.config
    for a, b in zip(jax.tree_util.tree_leaves(lr64.params), jax.tree_util.tree_leaves(back.params)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("meta.json"))
    assert meta["model"] == "nequip-lr" and meta["format_version"] == eqlr_jax.io.FORMAT_VERSION >= 2
    s = molecule()
    g, _ = back.graph(s, dtype=np.float64)
    assert float(back.energy(g)[0]) == float(lr64.energy(g)[0])


def test_version_1_short_range_file_still_loads(tmp_path, pot64):
    """A file as format 1 wrote it (kind nequip-sr, with the old edge_block key) loads."""
    new = tmp_path / "new.eqlr"
    eqlr_jax.save(new, pot64)
    old = tmp_path / "old.eqlr"
    with zipfile.ZipFile(new) as z:
        meta = json.loads(z.read("meta.json"))
        blob = z.read("params.msgpack")
    meta["format_version"] = 1
    meta["config"]["edge_block"] = "auto"
    with zipfile.ZipFile(old, "w") as z:
        z.writestr("meta.json", json.dumps(meta))
        z.writestr("params.msgpack", blob)
    back = eqlr_jax.load(old)
    assert back.config == pot64.config
    meta["model"] = "nequip-lr"
    with zipfile.ZipFile(old, "w") as z:
        z.writestr("meta.json", json.dumps(meta))
        z.writestr("params.msgpack", blob)
    with pytest.raises(eqlr_jax.io.ModelFileError, match="unknown model kind"):
        eqlr_jax.load(old)


def test_calculator_reports_charges_and_follows_the_total_charge(lr64):
    s = molecule(2, n=5, q=0.0)
    atoms = ase.Atoms(numbers=s.numbers, positions=s.positions)
    atoms.calc = lr64.calculator(dtype="float64")
    e0 = atoms.get_potential_energy()
    q0 = atoms.get_charges()
    assert abs(q0.sum()) < 1e-12
    atoms.info["total_charge"] = 1.0  # same geometry, new charge state: must recompute
    e1 = atoms.get_potential_energy()
    q1 = atoms.get_charges()
    assert abs(q1.sum() - 1.0) < 1e-12 and abs(e1 - e0) > 1e-3
    np.testing.assert_allclose(atoms.get_dipole_moment(), q1 @ s.positions, atol=1e-10)
    g, _ = lr64.graph(dataclasses.replace(s, total_charge=1.0), dtype=np.float64)
    ref = lr64(g)
    assert abs(e1 - float(ref["energy"][0])) < 1e-10
    np.testing.assert_allclose(atoms.get_forces(), np.asarray(ref["forces"][:5]), atol=1e-10)
    for key in ("energy_short", "energy_elec", "energy_qeq", "qeq_residual"):
        assert key in atoms.calc.results
    np.testing.assert_allclose(atoms.calc.results["energy_short"] + atoms.calc.results["energy_elec"], e1,
                               rtol=1e-12)


def test_float32_runs_and_agrees(lr64):
    s = charged_cell()
    a = lr64(lr64.graph(s, dtype=np.float64)[0])
    b = lr64(lr64.graph(s, dtype=np.float32)[0])
    assert b["energy"].dtype == jnp.float32 and bool(b["qeq_converged"])
    np.testing.assert_allclose(np.asarray(b["charges"][:6]), np.asarray(a["charges"][:6]), atol=1e-4)
    np.testing.assert_allclose(np.asarray(b["forces"][:6]), np.asarray(a["forces"][:6]),
                               atol=2e-3 * np.abs(np.asarray(a["forces"])).max())


def test_force_training_gradient_matches_finite_differences(lr64):
    """d/dθ of a force loss (second derivatives through the QEq solve) along one parameter direction."""
    s = charged_cell()
    g, _ = lr64.graph(s, dtype=np.float64)
    target = np.random.default_rng(0).normal(size=g.positions.shape)

    def loss(params):
        f = -jax.grad(lambda p: jnp.sum(node_energies(CFG, params, g, p, g.cell)))(g.positions)
        return jnp.sum(jnp.where(g.node_mask[:, None], (f - target) ** 2, 0.0))

    grad = jax.jit(jax.grad(loss))(lr64.params)
    leaves, tree = jax.tree_util.tree_flatten(lr64.params)
    rng = np.random.default_rng(1)
    direction = jax.tree_util.tree_unflatten(tree, [rng.normal(size=np.shape(x)) for x in leaves])
    loss_jit = jax.jit(loss)
    h = 1e-5
    shifted = lambda t: jax.tree_util.tree_map(lambda p, d: p + t * d, lr64.params, direction)  # noqa: E731
    fd = (float(loss_jit(shifted(h))) - float(loss_jit(shifted(-h)))) / (2 * h)
    analytic = sum(float(jnp.vdot(a, d)) for a, d in zip(jax.tree_util.tree_leaves(grad),
                                                           jax.tree_util.tree_leaves(direction)))
    assert abs(fd) > 1e-3
    assert abs(analytic - fd) < 1e-6 * abs(fd)


def test_batch_total_charges_must_match_the_structures(lr64):
    structures = [molecule(0), molecule(1, n=4)]
    with pytest.raises(ValueError, match="one finite value"):
        lr64.graph(structures, total_charge=[1.0])
    with pytest.raises(ValueError, match="one finite value"):
        lr64.graph(structures, total_charge=[1.0, np.nan])
    g, _ = lr64.graph(structures, dtype=np.float64, total_charge=[0.5, -2.0])
    out = lr64(g)
    np.testing.assert_allclose([float(np.sum(out["charges"][:6])), float(np.sum(out["charges"][6:10]))],
                               [0.5, -2.0], atol=1e-12)
    bad = dataclasses.replace(g, total_charge=g.total_charge.at[-1].set(1.0))  # charge on the padding slot
    with pytest.raises(ValueError, match="padding slot"):
        lr64(bad)
    with pytest.raises(ValueError, match="one total charge"):
        lr64(dataclasses.replace(g, total_charge=g.total_charge[:2]))


@pytest.mark.parametrize("variant", [dict(chi_head="bounded", chi_reference=(0.93, 3.16, 0.82)),
                                     dict(energy="qeq"), dict(stage2_input="stage1"), dict(learn_sigma=True)],
                         ids=["bounded-chi", "qeq-energy", "stage2-from-stage1", "learned-sigma"])
def test_model_variants(variant):
    """Each option runs, keeps forces exact (finite differences) and does what it says."""
    cfg = dataclasses.replace(CFG, **variant)
    pot = Potential.init(cfg, seed=3, dtype=np.float64)
    s = molecule(5, n=5, q=-1.0)
    g, _ = pot.graph(s, dtype=np.float64)
    out = pot(g)
    e = energy_fn(pot, g)
    fd = fd_grad(lambda p: e(jnp.asarray(p), g.cell), np.asarray(g.positions))
    np.testing.assert_allclose(np.asarray(out["forces"][:5]), -fd[:5], atol=1e-6 * np.abs(fd).max())
    total = float(out["energy"][0])
    if cfg.energy == "qeq":
        assert abs(total - float(out["energy_short"][0] + out["energy_qeq"][0])) < 1e-10
        assert abs(float(out["energy_qeq"][0] - out["energy_elec"][0])) > 1e-4
    else:
        assert abs(total - float(out["energy_short"][0] + out["energy_elec"][0])) < 1e-10
    if cfg.chi_head == "bounded":
        ref = np.asarray(cfg.chi_reference)[np.asarray(g.species[:5])]
        chi = np.asarray(out["chi"][:5])
        assert np.all(np.abs(chi / ref - 1.0) <= cfg.chi_bound + 1e-12)
    if cfg.learn_sigma:  # the widths are parameters: the energy depends on them
        de = jax.grad(lambda p: jnp.sum(node_energies(cfg, p, g)))(pot.params)["qeq"]["sigma"]
        assert np.abs(np.asarray(de)).max() > 1e-4
    if cfg.stage2_input == "stage1":
        assert cfg.stage2().n_node_inputs == cfg.charge_basis + 1 + cfg.num_features


def test_config_validation():
    with pytest.raises(ValueError, match="chi_head"):
        LRConfig(species=("H",), chi_head="linear")
    with pytest.raises(ValueError, match="hardness_init"):
        LRConfig(species=("H", "C"), hardness_init=(1.0, -1.0))
    with pytest.raises(ValueError, match="Pauling"):
        LRConfig(species=("He",), chi_head="bounded")
    with pytest.raises(ValueError, match="charge_range"):
        LRConfig(species=("H",), charge_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="unknown LRConfig fields"):
        LRConfig.from_dict(dict(LRConfig(species=("H",)).to_dict(), r_maks=3.0))
    cfg = LRConfig(species=("H", "O"), sigmas=(0.3, 0.6))
    assert LRConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_mixed_precision_runs_the_networks_in_float32_and_qeq_in_float64(lr64):
    """Runtime(network_dtype="float32") on float64 input (a charged triclinic cell): float32-level
    network results, but the charges still sum to the total charge to float64 precision (QEq and
    Ewald in float64)."""
    s = charged_cell()
    g, _ = lr64.graph(s, dtype=np.float64)
    ref = lr64(g)
    mixed = dataclasses.replace(lr64, runtime=Runtime(network_dtype="float32"))(g)
    f32 = lr64(lr64.graph(s, dtype=np.float32)[0])
    n = s.n_atoms
    for k in ("energy", "forces", "stress", "charges"):
        assert mixed[k].dtype == jnp.float64, k
    e_ref = float(ref["energy"][0])
    d_mixed = abs(float(mixed["energy"][0]) - e_ref)
    assert 0.0 < d_mixed < 1e-5 * max(1.0, abs(e_ref))  # the network rounded to float32, nothing worse
    np.testing.assert_allclose(np.asarray(mixed["forces"][:n]), np.asarray(ref["forces"][:n]), atol=1e-4)
    np.testing.assert_allclose(np.asarray(mixed["charges"][:n]), np.asarray(ref["charges"][:n]), atol=1e-5)
    q_err_mixed = abs(float(np.sum(np.asarray(mixed["charges"][:n]))) - s.total_charge)
    q_err_f32 = abs(float(np.sum(np.asarray(f32["charges"][:n], np.float64))) - s.total_charge)
    assert q_err_mixed < 1e-12 and q_err_mixed < q_err_f32
    with pytest.raises(ValueError, match="network_dtype"):
        Runtime(network_dtype="float16")
