"""Smoke tests of the benchmark scripts: they run on tiny sizes and their JSON is sane.

The scripts reach into the library's internals (``bench_tp.py`` into the convolution), so a
refactor can break them without breaking a unit test; these runs catch that. Timings are not
checked, only that the scripts run and what they compare agrees.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args, timeout=600):
    # the scripts import eqlr_jax from this tree, not from wherever the interpreter has it installed
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_bench_tp_hand_written_backward_matches_autodiff():
    (row,) = _run("bench_tp.py", "--natoms", "64", "--lmax", "1", "--block", "256", "--iters", "1")
    assert row["lmax"] == 1 and row["edges_in_block"] == 256
    assert row["max_rel_diff"] < 1e-5
    assert row["hand_written_ms"] > 0 and row["autodiff_ms"] > 0


@pytest.mark.slow
def test_bench_sr_and_growth_run():
    (row,) = _run("bench_sr.py", "--natoms", "64", "--skip-ase", "--warmup", "1", "--iters", "2", "--threads", "1")
    assert row["natoms"] == 64 and row["model_ms"] > 0 and row["compile_s"] > 0
    (growth,) = _run("bench_growth.py", "--sizes", "64", "216", "--pairs", "2")
    assert growth["growth"] > 0


def test_bench_lr_qeq_rows_run_and_solvers_agree_on_iterations():
    rows = _run("bench_lr.py", "--rows", "qeq", "--sizes", "64", "--iters", "1")
    by_solver = {r["solver"]: r for r in rows}
    assert set(by_solver) == {"dense", "cg"}
    assert by_solver["dense"]["iterations"] == 0 < by_solver["cg"]["iterations"] < 100
    assert all(r["residual_eV_per_e"] < 1e-3 and r["kvectors"] > 0 for r in rows)


@pytest.mark.slow
def test_bench_lr_ratio_and_profile_run():
    rows = _run("bench_lr.py", "--rows", "ratio", "--natoms", "64", "--rounds", "1", "--iters", "1")
    assert {r["variant"] for r in rows} == {"sr_r5_4", "lr_r5_2+2", "lr_r3_2+2"}
    (prof,) = _run("bench_lr.py", "--rows", "profile", "--natoms", "64", "--iters", "1")
    assert prof["lr_energy_forces_ms"] > 0


def test_bench_train_runs_and_compiles_once_per_capacity():
    (row,) = _run("bench_train.py", "--systems", "chain", "--kinds", "sr", "--dtypes", "float32", "--frames", "16",
                  "--epochs", "1")
    assert row["structures_per_s"] > 0 and row["compiles_later_epochs"] == 0
    assert row["compiles_first_epoch"] <= row["capacities"]


@pytest.mark.slow
def test_bench_md_and_its_gpu_script_run(tmp_path):
    """bench_md.py's rows (the step, the force evaluation alone, ASE's model call and host
    work) and benchmarks/gpu_md.sh, the one-call GPU run, on tiny sizes on the CPU."""
    rows = _run("bench_md.py", "--natoms", "64", "--models", "lr", "--chunk", "2", "--rounds", "1",
                "--ase-steps", "2")
    (row,) = rows
    assert row["jax_md_ms"] > 0 and row["force_ms"] > 0 and row["ase_model_ms"] > 0  # timings: noisy, no order
    assert 0 < row["update_ms"] and 0 < row["rebuild_ms"]
    assert row["floor_ratio"] == pytest.approx(row["force_ms"] / row["ase_ms"])
    env = dict(os.environ, GPU_MD_SMALL="1", GPU_MD_BUDGET_S="120", PYTHON=sys.executable, JAX_PLATFORMS="cpu")
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_md.sh"), "run", str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (tmp_path / "md_gpu.jsonl").read_text().splitlines()
    assert lines and json.loads(lines[0])["kind"] == "md"
    assert "budget spent" in (tmp_path / "md_gpu.log").read_text()
