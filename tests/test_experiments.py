"""The experiments' configs cannot rot: they are what ``experiments/matrix.py`` says, and every
one of them trains for two steps on its first 10 frames (a smaller network, for time; 7 of them
in the default run, all with ``-m slow``)."""
import os
import sys

import numpy as np
import pytest

from eqlr_jax.train import load_config, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import matrix  # noqa: E402

CELLS = [(d, m) for d in matrix.DATASETS for m in matrix.MODELS]
# the default run trains each dataset's lr_r5 config and one SR config; the other configs differ
# from these only in r_max or the model kind: pytest -m slow
_DEFAULT_CELLS = {(d, "lr_r5") for d in matrix.DATASETS} | {("carbon_chain", "sr_r5")}


def test_configs_are_the_matrix():
    names = sorted(f for f in os.listdir(os.path.join(ROOT, "experiments", "configs")) if f.endswith(".yaml"))
    assert names == sorted(matrix.run_name(d, m) + ".yaml" for d, m in CELLS)
    for d, m in CELLS:
        on_disk = load_config(os.path.join(ROOT, "experiments", "configs", matrix.run_name(d, m) + ".yaml"))
        assert on_disk == load_config(None, base=matrix.config(d, m)), (d, m)
        assert on_disk.run.out_dir == f"experiments/runs/{d}_{m}"


@pytest.mark.parametrize("dataset,model", [
    pytest.param(d, m, id=f"{d}_{m}", marks=() if (d, m) in _DEFAULT_CELLS else pytest.mark.slow) for d, m in CELLS])
def test_every_config_trains_two_steps(dataset, model, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs' data paths are relative to the repository root
    path = os.path.join("experiments", "configs", matrix.run_name(dataset, model) + ".yaml")
    cfg = load_config(path, ["data.max_frames=10", "run.epochs=1", "run.batch_size=4", "run.capacity_levels=1",
                             "model.num_features=4", "run.test_at_end=false", f"run.out_dir={tmp_path / 'run'}"])
    run = train(cfg, log=lambda *a: None)
    assert run.metrics[-1]["step"] == 2
    assert (tmp_path / "run" / "best.eqlr").exists() and "valid_forces_rmse" in run.metrics[-1]
    assert run.potential.long_range == (matrix.MODELS[model]["kind"] == "lr")


def test_lode_binding_of_a_short_range_model_vanishes_beyond_its_receptive_field():
    """Physics check 4's oracle: an SR model's E(dimer) − E(A) − E(B) is exactly zero once the
    closest A–B contact exceeds r_max (no edge crosses the gap, whatever the layers); a model with
    charges keeps a tail."""
    import physics_lode

    import eqlr_jax

    kw = dict(species=(1, 6, 7, 8), r_max=3.0, num_features=4, radial_mlp_width=8, avg_num_neighbors=10.0)
    models = {"sr_r3": eqlr_jax.Potential.init(eqlr_jax.NequIPConfig(num_layers=2, **kw), seed=1, dtype=np.float64),
              "lr_r3": eqlr_jax.Potential.init(eqlr_jax.LRConfig(num_layers_charge=1, num_layers=1, **kw), seed=1,
                                               dtype=np.float64)}
    split = lambda d: (None, {"train": np.arange(0, 60, 2)})  # noqa: E731
    r = physics_lode.check_lode(lambda d, m: models.get(m), split, labels=("CA",))  # one dimer: few compiles
    assert set(r["models"]) == {"sr_r3", "lr_r3"} and r["n_frames"] == 10
    far = [i for i, row in enumerate(r["rows"]) if row["contact_A"] > 3.0]
    near = [i for i, row in enumerate(r["rows"]) if row["contact_A"] < 3.0]
    assert far and near
    sr, lr = np.array(r["models"]["sr_r3"]["binding_eV"]), np.array(r["models"]["lr_r3"]["binding_eV"])
    assert np.abs(sr[far]).max() < 1e-12 and np.abs(sr[near]).max() > 1e-7  # eV; the charged + apolar pair
    assert np.abs(lr[far]).min() > 1e-7
    assert [row["in_training"] for row in r["rows"][:4]] == [True, False, True, False]  # frames 10, 11, ...


def test_au2_slab_geometries_follow_the_recipe():
    import physics_slab

    up, flat = physics_slab.build(doped=True, flat=False), physics_slab.build(doped=True, flat=True)
    assert len(up) == 66 and (up.numbers == 13).sum() == 2 and (up.numbers == 79).sum() == 2
    assert physics_slab._tilt(up) == pytest.approx(0.0) and physics_slab._tilt(flat) == pytest.approx(90.0)
    au = flat.positions[flat.numbers == 79]
    assert np.linalg.norm(au[1] - au[0]) == pytest.approx(2.5)
    top = up.positions[:64, 2].max()
    assert up.positions[64, 2] - top == pytest.approx(2.2)
