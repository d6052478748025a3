"""Ensembles: vmapped training equals separate runs; the ensemble potential's means and spreads
equal the members' (float64)."""
import ase
import jax
import numpy as np
import pytest
import train_fixtures as tf

import eqlr_jax
from eqlr_jax.ensemble import EnsemblePotential
from eqlr_jax.train import load_config, train

from test_train import SMALL_MODEL


def _cfg(path, out, *extra):
    return load_config(None, [f"data.path={path}", f"run.out_dir={out}", "run.progress=false", "run.dtype=float64",
                              "run.capacity_levels=1", "run.epochs=3", "run.batch_size=4", "loss.charges=1.0",
                              *SMALL_MODEL, *extra])


def test_ensemble_of_two_equals_two_separate_runs(tmp_path):
    path = tf.write(tmp_path / "mol.xyz", tf.molecules(12))
    ens = train(_cfg(path, tmp_path / "ens", "run.ensemble=2"), log=lambda *a: None)
    assert isinstance(ens.potential, EnsemblePotential) and ens.potential.size == 2
    back = eqlr_jax.load(tmp_path / "ens" / "final.eqlr")
    assert isinstance(back, EnsemblePotential)
    for k in range(2):
        one = train(_cfg(path, tmp_path / f"one{k}", f"run.init_seed={k}"), log=lambda *a: None)
        single = eqlr_jax.load(tmp_path / f"one{k}" / "final.eqlr")
        for a, b in zip(jax.tree_util.tree_leaves(back.member(k).params), jax.tree_util.tree_leaves(single.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-7, atol=1e-9)
        assert one.metrics[-1]["epoch"] == 3


def test_ensemble_potential_means_and_spreads():
    cfg = eqlr_jax.LRConfig(species=(1, 6, 8), r_max=4.0, num_features=4, num_layers=1, num_layers_charge=1,
                            radial_mlp_width=8)
    members = [eqlr_jax.Potential.init(cfg, seed=s, dtype=np.float64) for s in range(3)]
    ens = EnsemblePotential.from_potentials(members)
    atoms = tf.molecules(1)[0]
    s = eqlr_jax.Structure.from_ase(atoms)
    g, _ = ens.graph(s, dtype=np.float64)
    out = ens(g)
    each = [m(g) for m in members]
    for key in ("energy", "forces", "charges"):
        stack = np.stack([np.asarray(e[key]) for e in each])
        np.testing.assert_allclose(np.asarray(out[key]), stack.mean(0), atol=1e-12)
        np.testing.assert_allclose(np.asarray(out[f"{key}_std"]), stack.std(0), atol=1e-12)
    assert float(out["energy_std"][0]) > 1e-6
    a = ase.Atoms(numbers=s.numbers, positions=s.positions)
    a.info["total_charge"] = s.total_charge
    a.calc = ens.calculator(dtype="float64")
    np.testing.assert_allclose(a.get_potential_energy(), float(out["energy"][0]), rtol=1e-12)
    np.testing.assert_allclose(a.calc.results["forces_std"], np.asarray(out["forces_std"][:s.n_atoms]), atol=1e-12)
    assert a.calc.results["charges_std"].shape == (s.n_atoms,)


@pytest.mark.slow  # three training runs; pytest -m slow
def test_bootstrap_members_differ_and_unit_weights_change_nothing(tmp_path):
    from eqlr_jax.train.loss import LossWeights, loss_terms

    path = tf.write(tmp_path / "mol.xyz", tf.molecules(12))
    run = train(_cfg(path, tmp_path / "boot", "run.ensemble=2", "run.bootstrap=true", "run.init_seed=5",
                     "run.epochs=2"), log=lambda *a: None)
    plain = train(_cfg(path, tmp_path / "plain", "run.ensemble=2", "run.init_seed=5", "run.epochs=2"),
                  log=lambda *a: None)
    a = jax.tree_util.tree_leaves(run.potential.member(0).params)
    b = jax.tree_util.tree_leaves(plain.potential.member(0).params)
    assert max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b)) > 1e-8
    # weights of one change nothing; a weight of two counts a reference twice
    import jax.numpy as jnp

    from eqlr_jax.train.batches import Targets

    t = Targets(energy=jnp.zeros(3), energy_mask=jnp.array([True, True, False]), n_atoms=jnp.ones(3),
                forces=jnp.zeros((4, 3)), forces_mask=jnp.array([True, True, True, False]), stress=jnp.zeros((3, 3, 3)),
                stress_mask=jnp.zeros(3, bool), charges=jnp.zeros(4), charges_mask=jnp.zeros(4, bool),
                dipole=jnp.zeros((3, 3)), dipole_mask=jnp.zeros(3, bool))
    out = {"energy": jnp.array([1.0, 3.0, 7.0]), "forces": jnp.arange(12.0).reshape(4, 3)}
    w = LossWeights()
    ones = loss_terms(out, t, w, (jnp.ones(3), jnp.ones(4)))
    none = loss_terms(out, t, w)
    assert all(np.allclose(ones[k][0], none[k][0]) for k in none)
    twice = loss_terms(out, t, w, (jnp.array([2.0, 1.0, 1.0]), jnp.ones(4)))
    np.testing.assert_allclose(float(twice["energy"][0]), (2 * 1.0 + 9.0) / 3)
