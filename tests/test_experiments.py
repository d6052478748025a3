"""The experiments' configs cannot rot: they are what ``experiments/matrix.py`` says, and every
one of them trains for two steps on its first 10 frames (a smaller network, for time)."""
import os
import sys

import pytest

from eqlr_jax.train import load_config, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import matrix  # noqa: E402

CELLS = [(d, m) for d in matrix.DATASETS for m in matrix.MODELS]


def test_configs_are_the_matrix():
    names = sorted(f for f in os.listdir(os.path.join(ROOT, "experiments", "configs")) if f.endswith(".yaml"))
    assert names == sorted(matrix.run_name(d, m) + ".yaml" for d, m in CELLS)
    for d, m in CELLS:
        on_disk = load_config(os.path.join(ROOT, "experiments", "configs", matrix.run_name(d, m) + ".yaml"))
        assert on_disk == load_config(None, base=matrix.config(d, m)), (d, m)
        assert on_disk.run.out_dir == f"experiments/runs/{d}_{m}"


@pytest.mark.parametrize("dataset,model", CELLS, ids=[f"{d}_{m}" for d, m in CELLS])
def test_every_config_trains_two_steps(dataset, model, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs' data paths are relative to the repository root
    path = os.path.join("experiments", "configs", matrix.run_name(dataset, model) + ".yaml")
    cfg = load_config(path, ["data.max_frames=10", "run.epochs=1", "run.batch_size=4", "run.capacity_levels=1",
                             "model.num_features=4", "run.test_at_end=false", f"run.out_dir={tmp_path / 'run'}"])
    run = train(cfg, log=lambda *a: None)
    assert run.metrics[-1]["step"] == 2
    assert (tmp_path / "run" / "best.eqlr").exists() and "valid_forces_rmse" in run.metrics[-1]
    assert run.potential.long_range == (matrix.MODELS[model]["kind"] == "lr")
