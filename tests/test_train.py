"""Training: datasets and their errors, splits, statistics, loss, the training loop, resume,
checkpoints, evaluation and the command line (float64 where numbers are compared)."""
import json
import os
import signal
import subprocess
import sys
import time

import ase
import ase.io
import numpy as np
import pytest
import train_fixtures as tf

import eqlr_jax
from eqlr_jax.train import DatasetError, Keys, RunExistsError, load_config, load_frames, reference_energies, train
from eqlr_jax.train.config import ConfigError
from eqlr_jax.train.data import split_indices
from eqlr_jax.train.evaluate import metrics, predictions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_MODEL = ["model.r_max=4.0", "model.num_features=4", "model.num_layers=1", "model.num_layers_charge=1",
               "model.radial_mlp_width=8", "model.chi_hidden=4", "model.charge_basis=4"]


def _cfg(path, out, *extra):
    return load_config(None, [f"data.path={path}", f"run.out_dir={out}", "run.progress=false", "run.dtype=float64",
                              "run.capacity_levels=1",
                              *SMALL_MODEL, *extra])


@pytest.fixture
def dataset(tmp_path):
    return tf.write(tmp_path / "mol.xyz", tf.molecules(12))


def test_frames_keys_and_spice_names(tmp_path):
    frames = tf.molecules(3)
    for a in frames:  # SPICE-style names: force and mbi_charges arrays
        a.arrays["force"] = a.calc.results["forces"]
        a.arrays["mbi_charges"] = a.calc.results["charges"]
    path = tmp_path / "spice.xyz"
    ase.io.write(path, frames, format="extxyz")
    got = load_frames(path, Keys(forces="force", charges="mbi_charges"))
    for f, a in zip(got, frames):
        np.testing.assert_allclose(f.forces, a.calc.results["forces"], atol=1e-7)  # extxyz keeps 8 decimals
        np.testing.assert_allclose(f.charges, a.calc.results["charges"], atol=1e-7)
        assert f.structure.total_charge == a.info["total_charge"]


def test_dataset_errors_name_file_and_frame(tmp_path):
    frames = tf.molecules(4)
    bad = frames[2]
    bad.calc = None  # no energy on frame 2
    p = tf.write(tmp_path / "missing.xyz", frames)
    with pytest.raises(DatasetError, match=r"missing\.xyz:2: frame has no energy"):
        load_frames(p)
    frames = tf.molecules(4)
    frames[1].calc.results["forces"][0, 0] = np.nan
    p = tf.write(tmp_path / "nan.xyz", frames)
    with pytest.raises(DatasetError, match=r"nan\.xyz:1: forces .* NaN"):
        load_frames(p)
    with pytest.raises(FileNotFoundError):
        load_frames(tmp_path / "nothing.xyz")


def test_split_is_seeded_and_disjoint():
    a, b = split_indices(50, 0.2, 0.1, seed=3), split_indices(50, 0.2, 0.1, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(a["valid"]) == 10 and len(a["test"]) == 5 and len(a["train"]) == 35
    assert len(np.unique(np.concatenate(list(a.values())))) == 50
    assert not np.array_equal(split_indices(50, 0.2, 0.1, seed=4)["test"], a["test"])


def test_n_train_draws_nested_subsets_from_the_whole_split():
    from eqlr_jax.train.trainer import train_subset

    train = split_indices(5000, 0.1, 0.1, seed=0)["train"]  # two 2500-frame files, in file order
    small, large = train_subset(train, 100, 0), train_subset(train, 1000, 0)
    assert len(small) == 100 and len(np.unique(large)) == 1000 and set(large) <= set(train)
    assert set(small) <= set(large) and np.all(np.diff(small) > 0)  # nested, sorted
    assert 30 < np.sum(small >= 2500) < 70  # both files, not the first frames of the first
    assert np.array_equal(train_subset(train, 100, 0), small) and not np.array_equal(train_subset(train, 100, 1), small)


def test_reference_energies_are_least_squares():
    frames = load_frames_from(tf.molecules(20, seed=5))
    species = (1, 6, 8)
    a = np.array([[np.sum(f.structure.numbers == z) for z in species] for f in frames], float)
    b = np.array([f.energy for f in frames])
    ref = np.linalg.solve(a.T @ a, a.T @ b)  # the normal equations, NumPy
    np.testing.assert_allclose(reference_energies(frames, species), ref, rtol=1e-10)


def load_frames_from(atoms_list):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return load_frames(tf.write(os.path.join(d, "x.xyz"), atoms_list))


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(None, ["data.path=x.xyz", "optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="unknown model keys"):
        load_config(None, ["data.path=x.xyz", "model.rmax=3"])
    with pytest.raises(ConfigError, match="unknown sections"):
        load_config(None, ["data.path=x.xyz", "training.lr=1"])
    with pytest.raises(ConfigError, match="must be int"):
        load_config(None, ["data.path=x.xyz", "run.epochs=ten"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["epochs=3"])
    cfg = load_config(None, ["data.path=x.xyz", "optim.lr=1e-4", "model.l_max=2"])
    assert cfg.optim.lr == 1e-4 and cfg.model_dict()["l_max"] == 2


def test_overfitting_8_structures_gets_forces_below_1_meV_per_A(tmp_path):
    path = tf.write(tmp_path / "mol.xyz", tf.molecules(8, coulomb=False))
    cfg = load_config(None, [f"data.path={path}", f"run.out_dir={tmp_path / 'run'}", "run.progress=false",
                             "run.dtype=float64", "data.valid_fraction=0", "data.test_fraction=0",
                             "run.epochs=7000", "run.batch_size=8", "run.checkpoint_every=10000",
                             "run.early_stopping_patience=null", "model.kind=sr", "model.r_max=4.0",
                             "model.num_features=16", "model.num_layers=2", "model.radial_mlp_width=16",
                             "optim.optimizer=adam", "optim.lr=0.02", "optim.schedule=cosine", "optim.min_lr=1e-4",
                             "optim.ema_decay=0", "loss.forces=100.0"])
    run = train(cfg, log=lambda *a: None)
    assert run.metrics[-1]["valid_forces_rmse"] < 1.0, run.metrics[-1]
    assert run.compiles == {"train": 1, "eval": 1}
    for name in ("best.eqlr", "final.eqlr", "metrics.jsonl", "learning_curve.png", "config.json", "split.json"):  # no test split here
        assert os.path.exists(tmp_path / "run" / name), name


def test_resume_equals_an_uninterrupted_run(tmp_path, dataset):
    common = ["run.epochs=4", "run.batch_size=4", "run.checkpoint_every=1", "loss.charges=1.0",
              "optim.warmup_steps=3"]
    full = train(_cfg(dataset, tmp_path / "full", *common), log=lambda *a: None)
    part = _cfg(dataset, tmp_path / "part", *common[1:], "run.epochs=2")
    train(part, log=lambda *a: None)
    with pytest.raises(RunExistsError, match="already holds a run"):
        train(_cfg(dataset, tmp_path / "part", *common), log=lambda *a: None)
    resumed = train(_cfg(dataset, tmp_path / "part", *common, "run.resume=true"), log=lambda *a: None)
    a, b = eqlr_jax.load(tmp_path / "full" / "final.eqlr"), eqlr_jax.load(tmp_path / "part" / "final.eqlr")
    for x, y in zip(jax_leaves(a.params), jax_leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    assert [m["valid_loss"] for m in full.metrics] == [m["valid_loss"] for m in resumed.metrics]
    assert full.potential.long_range and "valid_charges_rmse" in full.metrics[-1]


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, dataset):
    out = tmp_path / "killed"
    args = [f"data.path={dataset}", f"run.out_dir={out}", "run.epochs=400", "run.checkpoint_every=1",
            "run.progress=false", "run.batch_size=4", "run.capacity_levels=1", *SMALL_MODEL]
    proc = subprocess.Popen([sys.executable, "-m", "eqlr_jax.cli", "train", os.devnull, *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(metrics.read_text().splitlines())
    assert done >= 4
    cfg = load_config(None, args + ["run.epochs=1", "run.resume=true"])
    from eqlr_jax.train.trainer import _checkpointer

    last = _checkpointer(str(out), 2).latest_step()
    assert last >= done - 1  # at most one checkpoint interval lost
    resumed = train(load_config(None, args + ["run.resume=true", f"run.epochs={last + 1}"]), log=lambda *a: None)
    assert resumed.metrics[-1]["epoch"] == last + 1
    assert cfg.run.resume


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, dataset):
    out = tmp_path / "run"
    train(_cfg(dataset, out, "run.epochs=1"), log=lambda *a: None)
    ckpt = out / "checkpoints"
    for root, _, files in os.walk(ckpt):
        for f in files:
            if "state" in root:
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    with pytest.raises(ValueError, match="unreadable"):
        train(_cfg(dataset, out, "run.epochs=2", "run.resume=true"), log=lambda *a: None)


def test_unknown_element_names_the_frame(tmp_path):
    frames = tf.molecules(6)
    frames[4].numbers[0] = 26  # Fe
    path = tf.write(tmp_path / "fe.xyz", frames)
    with pytest.raises(ValueError, match=r"fe\.xyz:4: element Fe"):
        train(_cfg(path, tmp_path / "run", "model.species=[1, 6, 8]", "run.epochs=1"), log=lambda *a: None)


def test_evaluate_metrics_equal_numpy(tmp_path, dataset):
    pot = eqlr_jax.Potential.init(eqlr_jax.LRConfig(species=(1, 6, 8), r_max=4.0, num_features=4, num_layers=1,
                                                    num_layers_charge=1, radial_mlp_width=8), dtype=np.float64)
    frames = load_frames(dataset)
    pairs = predictions(pot, frames, batch_size=5, dtype=np.float64)
    m = metrics(pairs)
    ref_e, pred_e = [], []
    for f in frames:  # one structure at a time, through the ASE calculator
        atoms = ase.Atoms(numbers=f.structure.numbers, positions=f.structure.positions)
        atoms.info["total_charge"] = f.structure.total_charge
        atoms.calc = pot.calculator(dtype="float64")
        ref_e.append(f.energy / f.n_atoms)
        pred_e.append(atoms.get_potential_energy() / f.n_atoms)
    err = 1000 * (np.array(pred_e) - np.array(ref_e))
    np.testing.assert_allclose(m["energy"]["rmse"], np.sqrt(np.mean(err**2)), rtol=1e-9)
    np.testing.assert_allclose(m["energy"]["mae"], np.mean(np.abs(err)), rtol=1e-9)
    assert set(m) == {"energy", "forces", "charges", "dipole"}


def test_cli_train_and_evaluate(tmp_path, dataset):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  path: {dataset}\nrun:\n  out_dir: {tmp_path / 'run'}\n  epochs: 2\n  progress: false\n"
                   "model:\n  num_features: 4\n  num_layers: 1\n  num_layers_charge: 1\n  r_max: 4.0\n")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-m", "eqlr_jax.cli", "train", str(cfg), "optim.lr=1e-3"], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "test split:" in run.stdout
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text())["forces"]["unit"] == "meV/Å"
    again = subprocess.run([sys.executable, "-m", "eqlr_jax.cli", "train", str(cfg)], cwd=ROOT,
                           capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    ev = subprocess.run([sys.executable, "-m", "eqlr_jax.cli", "evaluate", str(tmp_path / "run" / "best.eqlr"),
                         dataset, "--out", str(tmp_path), "--json", str(tmp_path / "m.json")], cwd=ROOT,
                        capture_output=True, text=True, env=env)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "forces" in ev.stdout and (tmp_path / "parity.png").exists()
    assert json.loads((tmp_path / "m.json").read_text())["energy"]["unit"] == "meV/atom"
    helptext = subprocess.run([sys.executable, "-m", "eqlr_jax.cli", "train", "--help"], cwd=ROOT,
                              capture_output=True, text=True, env=env).stdout
    import dataclasses

    from eqlr_jax.train.config import DataSection, OptimSection, RunSection

    for cls in (DataSection, OptimSection, RunSection):
        for f in dataclasses.fields(cls):
            assert f"    {f.name} = " in helptext, f.name


def test_several_dataset_files(tmp_path):
    a = tf.write(tmp_path / "a.xyz", tf.molecules(5, seed=1))
    b = tf.write(tmp_path / "b.xyz", tf.molecules(7, seed=2))
    from eqlr_jax.train.trainer import prepare

    frames, splits = prepare(load_config(None, [f"data.path=[{a}, {b}]", "data.valid_fraction=0.25"]))
    assert len(frames) == 12 and frames[5].source.endswith("b.xyz:0")
    assert sum(len(v) for v in splits.values()) == 12


SHARDED = r"""
import os, sys, json
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from eqlr_jax.train import load_config, train
path, out, devices = sys.argv[1], sys.argv[2], sys.argv[3]
assert len(jax.devices()) == 2
args = json.loads(sys.argv[4]) + [f"data.path={path}", f"run.out_dir={out}", f"run.devices={devices}"]
run = train(load_config(None, args), log=lambda *a: None)
print(json.dumps([m["valid_loss"] for m in run.metrics]))
"""


def test_sharded_training_on_two_cpu_devices_equals_one_device(tmp_path, dataset):
    args = ["run.progress=false", "run.dtype=float64", "run.capacity_levels=1", "run.epochs=2", "run.batch_size=2",
            "run.shards=2", "model.kind=sr", "model.r_max=4.0", "model.num_features=4", "model.num_layers=1",
            "model.radial_mlp_width=8"]
    losses = []
    for devices in ("2", "1"):
        proc = subprocess.run([sys.executable, "-c", SHARDED, dataset, str(tmp_path / f"d{devices}"), devices,
                               json.dumps(args)], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, JAX_PLATFORMS="cpu"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        losses.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-10)
    a, b = eqlr_jax.load(tmp_path / "d2" / "final.eqlr"), eqlr_jax.load(tmp_path / "d1" / "final.eqlr")
    for x, y in zip(jax_leaves(a.params), jax_leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


def test_ase_database_reads_like_extxyz(tmp_path):
    import ase.db

    frames = tf.molecules(4)
    with ase.db.connect(tmp_path / "mol.db") as db:
        for a in frames:
            db.write(a, total_charge=a.info["total_charge"])
    from_db = load_frames(tmp_path / "mol.db")
    from_xyz = load_frames(tf.write(tmp_path / "mol.xyz", frames))
    for a, b in zip(from_db, from_xyz):
        assert abs(a.energy - b.energy) < 1e-6 and a.structure.total_charge == b.structure.total_charge
        np.testing.assert_allclose(a.forces, b.forces, atol=1e-7)


def test_max_frames_reads_no_more_and_a_row_vector_dipole_is_accepted(tmp_path):
    import ase.io

    frames = tf.molecules(6)
    atoms = []
    for f in frames:
        a = ase.Atoms(numbers=f.numbers, positions=f.positions)
        a.info.update(energy=-1.0, dipole=[[0.1, 0.2, 0.3]])  # SPICE stores the dipole as a 1 x 3 row
        atoms.append(a)
    a_path, b_path = tmp_path / "a.xyz", tmp_path / "b.xyz"
    ase.io.write(a_path, atoms[:4], format="extxyz")
    ase.io.write(b_path, atoms[4:], format="extxyz")
    with open(b_path, "a") as fh:
        fh.write("garbage that would fail if it were read\n")
    from eqlr_jax.train.trainer import prepare

    got, _ = prepare(load_config(None, [f"data.path=[{a_path}, {b_path}]", "data.max_frames=5", "loss.forces=0"]))
    assert len(got) == 5
    np.testing.assert_array_equal(got[0].dipole, [0.1, 0.2, 0.3])
