"""The xTB data generator follows the recipe: with tblite installed (the ``xtb`` extra), it
relabels the first frame of each committed set to its stored energy, forces and charges, and
makes 2 frames per system with every field the sets have."""
import os
import sys

import ase.io
import numpy as np
import pytest

pytest.importorskip("tblite")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments", "datasets"))

import generate_xtb as gx  # noqa: E402

RELABEL = [("carbon_chain_C10H3p", "C10H3p"), ("ag3", "Ag3p"), ("nacl_Na8Cl8p", "Na8Cl8p"), ("au2_mgo_al", "AuMgOAl")]


@pytest.mark.parametrize("file,name", RELABEL, ids=[r[1] for r in RELABEL])
def test_relabels_the_stored_frame(file, name):
    ref = ase.io.read(os.path.join(ROOT, "experiments", "data", "xtb", f"{file}.xyz.gz"), index=0)
    q = int(ref.info["total_charge"])
    _, method, _, _, t_el, _ = gx.SYSTEMS[name]
    out = gx.label(ref, gx.calculator(method, q, t_el, gx.n_electrons(ref, q)), q, name)
    assert abs(out.get_potential_energy() - ref.get_potential_energy()) < 1e-5  # eV
    np.testing.assert_allclose(out.get_forces(), ref.get_forces(), atol=1e-3)  # eV/Å, SCF-converged
    np.testing.assert_allclose(out.get_charges(), ref.get_charges(), atol=1e-3)


def test_two_frames_per_system(tmp_path):
    gx.main(["--frames", "2", "--equilibration", "2", "--every", "2", "--out", str(tmp_path)])
    for file in sorted({v[0] for v in gx.SYSTEMS.values()}):
        frames = ase.io.read(tmp_path / file, index=":")
        assert len(frames) >= (4 if file == "ag3.xyz" else 2), file
        for f in frames:
            q = f.info["total_charge"]
            assert np.isfinite(f.get_potential_energy()) and f.get_forces().shape == (len(f), 3)
            assert abs(f.get_charges().sum() - q) < 1e-4
            assert ("stress" in f.calc.results) == bool(f.pbc.all())
    ag3 = ase.io.read(tmp_path / "ag3.xyz", index=":")
    assert {f.info["total_charge"] for f in ag3} == {1.0, -1.0}
