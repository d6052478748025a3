"""``eqlr-jax md``: a few dozen steps of a tiny saved LR model write a trajectory with charges, a
thermo log and a plot, all of which parse."""
import ase.build
import ase.io
import numpy as np
import pytest

import eqlr_jax
from eqlr_jax import cli

pytest.importorskip("jax_md")

from helpers import write_rattled_nacl  # noqa: E402
from test_md import smooth_potential  # noqa: E402


def test_md_command_writes_trajectory_log_and_plot(tmp_path, capsys):
    model = tmp_path / "tiny.eqlr"
    eqlr_jax.save(model, smooth_potential(dtype=np.float32))
    structure = write_rattled_nacl(tmp_path, total_charge=-1.0)  # 8 atoms, cell < 2 r_max
    out = tmp_path / "run"
    rc = cli.main(["md", str(model), str(structure), "--ensemble", "nvt", "--temperature", "500", "--steps", "40",
                   "--every", "10", "--out", str(out), "--no-compile-cache", "--no-progress"])
    assert rc == 0
    assert "40 steps" in capsys.readouterr().out
    frames = ase.io.read(out / "trajectory.extxyz", index=":")
    assert len(frames) == 5  # the start and one per chunk
    for f in frames:
        q = f.get_charges()
        assert q.shape == (8,) and abs(q.sum() + 1.0) < 1e-4 and np.std(q) > 1e-3
        assert f.get_forces().shape == (8, 3)
        assert f.info["total_charge"] == -1.0
    assert frames[-1].info["step"] == 40
    assert not np.allclose(frames[0].positions, frames[-1].positions)
    lines = (out / "thermo.log").read_text().splitlines()
    header = lines[0].lstrip("# ").split()
    table = np.loadtxt(out / "thermo.log")
    assert header[:3] == ["step", "time_fs", "E_total"] and table.shape == (5, len(header))
    col = dict(zip(header, table.T))
    np.testing.assert_allclose(col["time_fs"], [0, 5, 10, 15, 20])
    np.testing.assert_allclose(col["total_charge"], -1.0, atol=1e-4)
    assert np.all(np.isfinite(col["P_GPa"])) and np.all(col["T_K"] > 0) and np.all(col["max_qeq_residual"] >= 0)
    png = (out / "thermo.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_md_command_rejects_bad_input(tmp_path, capsys):
    model = tmp_path / "tiny.eqlr"
    eqlr_jax.save(model, smooth_potential(dtype=np.float32))
    atoms = ase.build.bulk("KCl", "rocksalt", a=6.3, cubic=True)  # K is not known to the model
    structure = tmp_path / "kcl.xyz"
    ase.io.write(structure, atoms, format="extxyz")
    rc = cli.main(["md", str(model), str(structure), "--steps", "5", "--out", str(tmp_path / "o"),
                   "--no-compile-cache"])
    assert rc == 2
    assert "K" in capsys.readouterr().err
