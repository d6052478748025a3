#!/usr/bin/env python
"""Regenerate the GFN-xTB reference sets from their recipe (``../shared/data/xtb/GENERATION.md``)
with tblite, through ASE. Needs the optional extra: ``pip install -e ".[xtb]"`` (tblite 0.8.0).

MD sets (carbon chains, Ag3, NaCl clusters): the start geometry, a BFGS relaxation (fmax 0.05
eV/Å, at most 200 steps), Maxwell-Boltzmann velocities at T, Langevin MD (0.5 fs, friction
0.01/fs, ``fixcm=False``), ``--equilibration`` steps discarded, then one frame every ``--every``
steps; when the SCF fails, MD restarts from the last kept frame with new velocities. Ag3
geometries are labelled in both charge states (a failed second label is skipped). Slab sets
(Au2 on MgO(001), undoped and Al-doped): random Au2 placements, rattled, single points.

Each frame stores energy (eV), forces (eV/Å), Mulliken charges (e), stress (eV/Å³, periodic
frames), ``info["total_charge"]`` and ``info["system"]``. One thread per process
(``OMP_NUM_THREADS=1``), as the originals.

    python experiments/datasets/generate_xtb.py --systems C10H2 --frames 2500 --out data/
    python experiments/datasets/generate_xtb.py --frames 2 --equilibration 2 --every 2 --out /tmp/xtb
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

# name: (file, method, total charge, T (K), electronic T (K), seed)
SYSTEMS = {
    "C10H2": ("carbon_chain_C10H2.xyz", "GFN2-xTB", 0, 300.0, 300.0, 1),
    "C10H3p": ("carbon_chain_C10H3p.xyz", "GFN2-xTB", 1, 300.0, 300.0, 2),
    "Ag3p": ("ag3.xyz", "GFN2-xTB", 1, 500.0, 1000.0, 4),
    "Ag3m": ("ag3.xyz", "GFN2-xTB", -1, 500.0, 1000.0, 2),
    "Na9Cl8p": ("nacl_Na9Cl8p.xyz", "GFN2-xTB", 1, 300.0, 300.0, 4),
    "Na8Cl8p": ("nacl_Na8Cl8p.xyz", "GFN2-xTB", 1, 300.0, 300.0, 5),
    "AuMgO": ("au2_mgo.xyz", "GFN1-xTB", 0, None, 300.0, 6),
    "AuMgOAl": ("au2_mgo_al.xyz", "GFN1-xTB", 0, None, 300.0, 7),
}


def calculator(method: str, charge: int, electronic_temperature: float, n_electrons: int):
    from tblite.ase import TBLite

    kw = {"multiplicity": 2} if n_electrons % 2 else {}
    return TBLite(method=method, charge=charge, electronic_temperature=electronic_temperature, verbosity=0, **kw)


def n_electrons(atoms, charge: int) -> int:
    """Valence electrons as xTB counts them: the parity is what sets the multiplicity."""
    return int(atoms.get_atomic_numbers().sum()) - charge


def start_geometry(name: str):
    import ase
    import ase.build

    if name in ("C10H2", "C10H3p"):
        x = [0.0, 1.06]
        for i in range(9):
            x.append(x[-1] + (1.22 if i % 2 == 0 else 1.34))
        x.append(x[-1] + 1.06)
        atoms = ase.Atoms("HC10H", positions=[(xi, 0.0, 0.0) for xi in x])
        if name == "C10H3p":
            atoms.positions[0] = (-0.62, 0.93, 0.0)
            atoms += ase.Atoms("H", positions=[(-0.62, -0.93, 0.0)])
        return atoms
    if name == "Ag3p":
        a = 2.7
        return ase.Atoms("Ag3", positions=[(0, 0, 0), (a, 0, 0), (a / 2, a * np.sqrt(3) / 2, 0)])
    if name == "Ag3m":
        return ase.Atoms("Ag3", positions=[(0, 0, 0), (2.65, 0, 0), (5.30, 0, 0)])
    if name in ("Na9Cl8p", "Na8Cl8p"):
        sites = np.array([(i, j, k) for i in range(3) for j in range(3) for k in range(2)], float) * 2.82
        numbers = np.array([11 if int(round(s.sum() / 2.82)) % 2 == 0 else 17 for s in sites])
        centre = sites.mean(axis=0)
        d = np.linalg.norm(sites - centre, axis=1)
        keep = np.ones(len(sites), bool)
        keep[np.flatnonzero(numbers == 17)[np.argmax(d[numbers == 17])]] = False
        if name == "Na8Cl8p":
            na = np.flatnonzero((numbers == 11) & keep)
            keep[na[np.argmax(d[na])]] = False
        return ase.Atoms(numbers=numbers[keep], positions=sites[keep])
    raise ValueError(name)


def label(atoms, calc, charge: int, system: str):
    """A copy of ``atoms`` with the calculator's results stored as a SinglePointCalculator."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = atoms.copy()
    atoms.calc = calc
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "charges": atoms.get_charges()}
    if atoms.pbc.all():
        results["stress"] = atoms.get_stress()
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, **results)
    out.info.update(total_charge=float(charge), system=system)
    return out


def md_frames(name: str, n_frames: int, equilibration: int, every: int):
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.optimize import BFGS

    _, method, q, temperature, t_el, seed = SYSTEMS[name]
    rng = np.random.default_rng(seed)
    atoms = start_geometry(name)
    atoms.calc = calculator(method, q, t_el, n_electrons(atoms, q))
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=200)
    kept, last = [], atoms.copy()
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)  # Maxwell-Boltzmann
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.01 / units.fs, fixcm=False, rng=rng)
    step = 0
    while len(kept) < n_frames:
        try:
            dyn.run(1)
        except Exception:  # an SCF failure: back to the last kept frame, new velocities
            atoms.set_positions(last.positions)
            thermalize_momenta(atoms, temperature_K=temperature, rng=rng)  # Maxwell-Boltzmann
            continue
        step += 1
        if step > equilibration and (step - equilibration) % every == 0:
            last = atoms.copy()
            kept.append(label(atoms, atoms.calc, q, name.rstrip("pm") if name.startswith("Ag3") else name))
    return kept


def slab_frames(name: str, n_frames: int):
    import ase
    import ase.build

    _, method, q, _, t_el, seed = SYSTEMS[name]
    rng = np.random.default_rng(seed)
    frames = []
    while len(frames) < n_frames:
        slab = ase.build.bulk("MgO", "rocksalt", a=4.21, cubic=True).repeat((2, 2, 2))
        slab.center(vacuum=8.0, axis=2)
        slab.pbc = True
        if name == "AuMgOAl":
            z = slab.positions[:, 2]
            bottom_mg = np.flatnonzero((slab.numbers == 12) & (z < z.min() + 0.1))
            slab.numbers[bottom_mg[:2]] = 13
        z = slab.positions[:, 2]
        top_o = np.flatnonzero((slab.numbers == 8) & (z > z.max() - 0.1))
        site = slab.positions[rng.choice(top_o)]
        height, bond = rng.uniform(2.0, 2.5), rng.uniform(2.40, 2.75)
        theta, phi = rng.uniform(0.0, np.pi / 2), rng.uniform(0.0, 2 * np.pi)
        first = site + (0, 0, height)
        second = first + bond * np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
        atoms = slab + ase.Atoms("Au2", positions=[first, second])
        atoms.positions += rng.normal(0.0, 0.06, atoms.positions.shape)
        try:
            frames.append(label(atoms, calculator(method, q, t_el, n_electrons(atoms, q)), q, "AuMgO"))
        except Exception:
            continue
    return frames


def generate(name: str, n_frames: int, equilibration: int = 1000, every: int = 10):
    """The frames of one system (for Ag3 each geometry in both charge states)."""
    if name.startswith("AuMgO"):
        return slab_frames(name, n_frames)
    frames = md_frames(name, n_frames, equilibration, every)
    if name.startswith("Ag3"):
        _, method, q, _, t_el, _ = SYSTEMS[name]
        both = []
        for f in frames:
            both.append(f)
            try:
                both.append(label(f, calculator(method, -q, t_el, n_electrons(f, -q)), -q, "Ag3"))
            except Exception:  # about 2 % of the second labels do not converge: skipped
                pass
        frames = both
    return frames


def main(argv=None):
    import ase.io

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--systems", nargs="+", choices=sorted(SYSTEMS), default=sorted(SYSTEMS))
    p.add_argument("--frames", type=int, default=2500, help="frames per system (the slabs: 500 in the originals)")
    p.add_argument("--equilibration", type=int, default=1000)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--out", default="xtb")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    files = {}
    for name in args.systems:  # Ag3+ and Ag3- share one file
        files.setdefault(SYSTEMS[name][0], []).append(name)
    for file, names in files.items():
        frames = []
        for name in names:
            frames += generate(name, args.frames, args.equilibration, args.every)
        path = os.path.join(args.out, file)
        ase.io.write(path, frames, format="extxyz")
        print(f"{' + '.join(names)}: {len(frames)} frames -> {path}")


if __name__ == "__main__":
    main()
