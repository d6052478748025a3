"""An ensemble drives MD with its members' mean and logs their force spread (float64).

The oracle: each member's forces from its own ASE calculator at the logged positions."""
import dataclasses

import ase.build
import ase.io
import numpy as np
import pytest

import eqlr_jax
from eqlr_jax import Potential, cli
from eqlr_jax.ensemble import EnsemblePotential

pytest.importorskip("jax_md")

from helpers import write_rattled_nacl  # noqa: E402
from test_md import CFG, smooth_potential  # noqa: E402


def _ensemble():
    a = smooth_potential()
    other = Potential.init(CFG, seed=1, dtype=np.float64)  # the same smoothing, other weights
    b = dataclasses.replace(a, params=dict(other.params, chi=a.params["chi"]))
    return EnsemblePotential.from_potentials([a, b])


def test_ensemble_md_logs_the_members_force_spread(tmp_path, capsys):
    ens = _ensemble()
    model = tmp_path / "ens.eqlr"
    eqlr_jax.save(model, ens)
    structure = write_rattled_nacl(tmp_path, total_charge=0.0)  # 8 atoms, cell < 2 r_max
    out = tmp_path / "run"
    rc = cli.main(["md", str(model), str(structure), "--ensemble", "nvt", "--steps", "10", "--every", "5",
                   "--dtype", "float64", "--out", str(out), "--no-compile-cache", "--no-progress"])
    assert rc == 0
    capsys.readouterr()
    frame = ase.io.read(out / "trajectory.extxyz", index=-1)
    members = []
    for k in range(ens.size):
        probe = frame.copy()
        probe.calc = ens.member(k).calculator()
        members.append(probe.get_forces())
    members = np.array(members)
    spread = np.sqrt(np.var(members, axis=0).sum(axis=1))
    assert spread.max() > 1e-3  # the members disagree
    np.testing.assert_allclose(frame.arrays["forces_std"], spread, rtol=1e-5, atol=1e-7)  # extxyz keeps 8 decimals
    np.testing.assert_allclose(frame.get_forces(), members.mean(axis=0), rtol=1e-5, atol=1e-7)  # extxyz keeps 8 decimals
    header = (out / "thermo.log").read_text().splitlines()[0].lstrip("# ").split()
    col = dict(zip(header, np.loadtxt(out / "thermo.log").T))
    np.testing.assert_allclose(col["F_std_max"][-1], spread.max(), rtol=1e-5)
    assert np.all(col["F_std_max"] > 0)


def test_single_model_logs_no_force_spread(tmp_path, capsys):
    model = tmp_path / "one.eqlr"
    eqlr_jax.save(model, smooth_potential())
    atoms = ase.Atoms("NaCl", positions=[(0, 0, 0), (2.6, 0.1, 0)])
    structure = tmp_path / "dimer.xyz"
    ase.io.write(structure, atoms, format="extxyz")
    out = tmp_path / "run"
    assert cli.main(["md", str(model), str(structure), "--steps", "4", "--every", "2", "--dtype", "float64",
                     "--out", str(out), "--no-compile-cache", "--no-progress"]) == 0
    capsys.readouterr()
    header = (out / "thermo.log").read_text().splitlines()[0].lstrip("# ").split()
    col = dict(zip(header, np.loadtxt(out / "thermo.log").T))
    assert np.all(np.isnan(col["F_std_max"]))
    assert "forces_std" not in ase.io.read(out / "trajectory.extxyz", index=-1).arrays
