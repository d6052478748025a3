"""Model files (bit-for-bit round trip, clear errors) and the ASE calculator."""
import json
import zipfile

import ase.build
import jax
import numpy as np
import pytest
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress
from ase.md.verlet import VelocityVerlet

import eqlr_jax
from eqlr_jax.io import FORMAT_VERSION, ModelFileError


def test_save_load_bit_for_bit(tmp_path, pot64):
    path = tmp_path / "m.eqlr"
    eqlr_jax.save(path, pot64)
    back = eqlr_jax.load(path)
    assert back.config == pot64.config
    la, ta = jax.tree_util.tree_flatten(pot64.params)
    lb, tb = jax.tree_util.tree_flatten(back.params)
    assert ta == tb
    for a, b in zip(la, lb):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    # and again: the file itself is reproducible
    eqlr_jax.save(tmp_path / "m2.eqlr", back)
    with zipfile.ZipFile(path) as z1, zipfile.ZipFile(tmp_path / "m2.eqlr") as z2:
        assert z1.read("params.msgpack") == z2.read("params.msgpack")


def test_truncated_file(tmp_path, pot64):
    path = tmp_path / "m.eqlr"
    eqlr_jax.save(path, pot64)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        bad = tmp_path / f"cut{cut}.eqlr"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated or corrupt"):
            eqlr_jax.load(bad)


def _saved_with_meta(tmp_path, pot, edit):
    """``pot`` saved, then its meta.json changed in place by ``edit(meta)``; the file's path."""
    path = tmp_path / "edited.eqlr"
    eqlr_jax.save(path, pot)
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("meta.json"))
        blob = z.read("params.msgpack")
    edit(meta)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta.json", json.dumps(meta))
        z.writestr("params.msgpack", blob)
    return path


def test_newer_format_version(tmp_path, pot64):
    newer = _saved_with_meta(tmp_path, pot64, lambda meta: meta.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="newer than this eqlr_jax supports"):
        eqlr_jax.load(newer)


@pytest.mark.parametrize("edge_block", ["auto", None, 512])
def test_legacy_edge_block_in_model_file(tmp_path, pot64, edge_block):
    """Model files written while edge_block was part of NequIPConfig still load: the key is
    dropped (it only chose a speed option, now Runtime's) and the config is the same."""
    config = pot64.config.to_dict()
    assert "edge_block" not in config
    assert eqlr_jax.NequIPConfig.from_dict(dict(config, edge_block=edge_block)) == pot64.config
    path = _saved_with_meta(tmp_path, pot64, lambda meta: meta["config"].update(edge_block=edge_block))
    back = eqlr_jax.load(path)
    assert back.config == pot64.config and back.runtime == eqlr_jax.Runtime()
    with pytest.raises(ValueError, match="unknown NequIPConfig fields"):  # other unknown keys: still an error
        eqlr_jax.NequIPConfig.from_dict(dict(config, edge_blok=512))


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        eqlr_jax.load(tmp_path / "nope.eqlr")
    other = tmp_path / "x.eqlr"
    other.write_text("hello")
    with pytest.raises(ModelFileError):
        eqlr_jax.load(other)


def _nacl(rattle_seed=0, repeat=1):
    a = ase.build.bulk("NaCl", "rocksalt", a=5.5, cubic=True).repeat(repeat)
    a.rattle(0.05, seed=rattle_seed)
    return a


def test_calculator_agrees_with_potential(pot64):
    atoms = _nacl()
    atoms.calc = eqlr_jax.Calculator(pot64, dtype="float64")
    g, _ = pot64.graph(eqlr_jax.Structure.from_ase(atoms), dtype=np.float64)
    ref = pot64(g)
    n = len(atoms)
    assert atoms.get_potential_energy() == pytest.approx(float(ref["energy"][0]), rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), np.asarray(ref["forces"][:n]), rtol=1e-10, atol=1e-14)
    s = np.asarray(ref["stress"][0])
    np.testing.assert_allclose(atoms.get_stress(voigt=False), s, rtol=1e-10, atol=1e-14)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    assert atoms.calc.get_property("free_energy") == atoms.get_potential_energy()
    # ASE's own finite-difference stress agrees with ours (independent oracle, ASE's strain convention)
    np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5),
                               rtol=1e-6, atol=1e-9)


def test_calculator_compiles_once_during_md(pot64, caplog):
    atoms = _nacl(repeat=1)
    atoms.calc = pot64.calculator(dtype="float64")
    from eqlr_jax.potential import trace_count

    with caplog.at_level("INFO", logger="eqlr_jax.calculator"):
        atoms.get_forces()
        before = trace_count()
        VelocityVerlet(atoms, timestep=1.0).run(20)
    assert atoms.calc.n_compiles == 1
    assert trace_count() == before
    # the user is told once, on the call that compiles
    notes = [r.getMessage() for r in caplog.records if "compiles the model" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("padded capacity")


def test_calculator_molecule_has_no_stress(pot64):
    atoms = ase.Atoms("NaCl", positions=[[0, 0, 0], [2.4, 0, 0]])
    atoms.calc = pot64.calculator(dtype="float64")
    assert np.isfinite(atoms.get_potential_energy())
    assert abs(atoms.get_forces().sum(0)).max() < 1e-12
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_calculator_float64_needs_x64(pot64):
    with jax.enable_x64(False):  # the caller's switch, scoped to this block
        with pytest.raises(ValueError, match="jax_enable_x64"):
            eqlr_jax.Calculator(pot64, dtype="float64")


DEMO_FAST = ["--features", "4", "--minutes", "0.05", "run.epochs=2", "data.max_frames=40", "run.progress=false"]


def test_cli_demo_trains_and_compares(tmp_path, capsys):
    from eqlr_jax.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-compile-cache", *DEMO_FAST]) == 0
    text = capsys.readouterr().out
    assert "test errors" in text and "forces" in text and "charges" in text
    for name in ("parity_sr.png", "parity_lr.png", "charges_along_chain.png", "sr/best.eqlr", "lr/best.eqlr"):
        assert (out / name).exists(), name
    assert main(["info", str(out / "lr" / "best.eqlr")]) == 0
    assert main(["info", str(tmp_path / "missing.eqlr")]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["demo", "--out", str(out), "--compile-cache", str(blocker / "c"), *DEMO_FAST]) == 2


@pytest.mark.slow  # a second demo run; pytest -m slow
def test_cli_demo_runs_without_a_usable_default_cache(tmp_path, monkeypatch, capsys):
    from eqlr_jax.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("EQLR_JAX_CACHE_DIR", str(blocker / "c"))
    assert main(["demo", "--out", str(tmp_path / "demo"), *DEMO_FAST]) == 0
    assert "without a compilation cache" in capsys.readouterr().err
