"""The README's code runs as written: its jax-md example, in a fresh process (float32, as a user
runs it) in a directory where ``model.eqlr`` is a small LR model of Na and Cl."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import eqlr_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("jax_md")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_jax_md_example_runs_as_written(tmp_path):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        blocks = [b for b in python_blocks(fh.read()) if "potential_neighbor_list" in b]
    assert len(blocks) == 1, "the README should hold one jax-md example"
    cfg = eqlr_jax.LRConfig(species=("Na", "Cl"), r_max=4.0, num_features=4, num_layers_charge=1, num_layers=1,
                            radial_mlp_width=8, chi_hidden=8, charge_basis=4, hardness_init=(5.0, 5.0))
    eqlr_jax.save(tmp_path / "model.eqlr", eqlr_jax.Potential.init(cfg, seed=0, dtype=np.float32))
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    energy = float(proc.stdout.split()[-2])
    assert np.isfinite(energy) and proc.stdout.strip().endswith("eV")
