"""Physics check 3: Au2 flat against upright on MgO(001), undoped and Al-doped.

The geometries are the training sets' slab (``../shared/data/xtb/GENERATION.md``: a 2 × 2 × 2
rocksalt MgO cell, 4 layers, 8 Å of vacuum each side; the doped slab has the first two bottom
Mg replaced by Al), unrattled, with Au2 above the top-layer O nearest the cell's centre:
upright (along z) or flat (along [110], towards the next O). Au2 is relaxed with GFN1-xTB
(tblite, T_el = 300 K, Q = 0, BFGS to 0.05 eV/Å, the slab held fixed), and the relaxed
geometries with their xTB energies and Mulliken charges are stored in
``experiments/data/au2_mgo_relaxed.xyz.gz`` so that the check runs without tblite. Then each
au2_mgo model's E(flat) − E(upright) (eV) on those geometries is compared with xTB's, on both
slabs; the dopant effect is the difference of the two.

The four DFT slabs of ``../shared/data/au2-mgo-dft`` (110 atoms, another cell and dopant
count, DFT geometries) are evaluated too, as a transfer test: a model trained on xTB cannot be
expected to reproduce DFT's ΔE (−0.067 eV doped, +0.935 eV undoped), but its sign shows whether
it sees the dopant beyond its cutoff.
"""
from __future__ import annotations

import os

import numpy as np
from matrix import DATA, MODELS, ROOT

RELAXED = os.path.join(ROOT, DATA, "au2_mgo_relaxed.xyz.gz")
DFT = os.path.join(ROOT, DATA, "au2-mgo-dft")
DFT_DE = {"doped": -0.067, "undoped": 0.935}  # eV, E(flat) - E(upright), ../shared/data/README.md


def build(doped: bool, flat: bool, height: float = 2.2, bond: float = 2.5):
    """The unrelaxed slab with Au2 (Å)."""
    import ase
    import ase.build

    slab = ase.build.bulk("MgO", "rocksalt", a=4.21, cubic=True).repeat((2, 2, 2))
    slab.center(vacuum=8.0, axis=2)
    slab.pbc = True
    z = slab.positions[:, 2]
    if doped:
        bottom_mg = np.flatnonzero((slab.numbers == 12) & (z < z.min() + 0.1))
        slab.numbers[bottom_mg[:2]] = 13
    top_o = np.flatnonzero((slab.numbers == 8) & (z > z.max() - 0.1))
    centre = slab.cell.sum(axis=0)[:2] / 2
    site = slab.positions[top_o[np.argmin(np.linalg.norm(slab.positions[top_o, :2] - centre, axis=1))]]
    first = site + (0.0, 0.0, height)
    direction = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0) if flat else np.array([0.0, 0.0, 1.0])
    return slab + ase.Atoms("Au2", positions=[first, first + bond * direction])


def relax(atoms, fmax: float = 0.05, steps: int = 100):
    """Relax Au2 with GFN1-xTB, the slab fixed; returns a labelled copy (energy eV, forces, charges)."""
    import sys

    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixAtoms
    from ase.optimize import BFGS

    sys.path.insert(0, os.path.join(ROOT, "experiments", "datasets"))
    from generate_xtb import calculator, n_electrons

    atoms = atoms.copy()
    atoms.set_constraint(FixAtoms(indices=np.flatnonzero(atoms.numbers != 79)))
    atoms.calc = calculator("GFN1-xTB", 0, 300.0, n_electrons(atoms, 0))
    opt = BFGS(atoms, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    out = atoms.copy()
    out.set_constraint()
    out.calc = SinglePointCalculator(out, energy=atoms.get_potential_energy(),
                                     forces=atoms.get_forces(apply_constraint=False),
                                     charges=atoms.get_charges())
    out.info.update(total_charge=0.0, bfgs_steps=int(opt.nsteps), converged=converged)
    return out


def _relaxed(case):
    doped, flat = case
    a = relax(build(doped, flat))
    a.info.update(doped=doped, geometry="flat" if flat else "upright")
    return a


def relaxed_geometries(compute: bool = False):
    """The four relaxed structures, computing them with tblite if asked (or if none are stored);
    the relaxations run in parallel, one process (one thread) per CPU core."""
    import ase.io

    if os.path.exists(RELAXED) and not compute:
        return ase.io.read(RELAXED, ":")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import tblite  # noqa: F401  (ImportError here: say so before starting processes)

    cases = [(doped, flat) for doped in (False, True) for flat in (False, True)]
    spawn = multiprocessing.get_context("spawn")  # not fork: this process may have started JAX's threads
    with ProcessPoolExecutor(max_workers=min(len(cases), os.cpu_count() or 1), mp_context=spawn) as pool:
        frames = list(pool.map(_relaxed, cases))
    for a in frames:
        print(f"relaxed {'doped' if a.info['doped'] else 'undoped'} {a.info['geometry']}: "
              f"{a.get_potential_energy():.4f} eV, {a.info['bfgs_steps']} steps", flush=True)
    ase.io.write(RELAXED, frames, format="extxyz")
    return frames


def _energy_charge(pot, atoms) -> tuple[float, float | None]:
    """A model's energy (eV) and the summed charge on Au2 (e; None for SR)."""
    from outputs import atoms_outputs

    out = atoms_outputs(pot, atoms, 0.0, periodic=True)
    q = out["charges"]
    return out["energy"], (None if q is None else float(np.sum(q[atoms.numbers == 79])))


def _au_al(atoms) -> float | None:
    """The shortest Au–Al distance (Å, minimum image), None without Al."""
    al, au = np.flatnonzero(atoms.numbers == 13), np.flatnonzero(atoms.numbers == 79)
    if not len(al):
        return None
    return float(min(atoms.get_distances(i, al, mic=True).min() for i in au))


def _tilt(atoms) -> float:
    """The Au–Au axis' angle from the surface normal (degrees)."""
    au = atoms.positions[atoms.numbers == 79]
    v = au[1] - au[0]
    return float(np.degrees(np.arccos(abs(v[2]) / np.linalg.norm(v))))


def check_au2_slab(load_model, compute: bool = False) -> dict:
    try:
        frames = relaxed_geometries(compute)
    except ImportError:
        return {"missing": f"{os.path.relpath(RELAXED, ROOT)} is absent and tblite is not installed"}
    geo = {(bool(a.info["doped"]), str(a.info["geometry"])): a for a in frames}
    result = {"xtb": {}, "geometries": {}, "models": {}, "dft_transfer": {"reference_dE_eV": DFT_DE, "models": {}}}
    for (doped, g), a in geo.items():
        result["geometries"][f"{'doped' if doped else 'undoped'}_{g}"] = {
            "xtb_energy_eV": float(a.get_potential_energy()), "au2_mulliken_e": float(a.get_charges()[a.numbers == 79].sum()),
            "tilt_deg": _tilt(a), "bfgs_steps": int(a.info["bfgs_steps"]), "converged": bool(a.info["converged"]),
            "au_al_min_distance_A": _au_al(a)}
    for slab in ("undoped", "doped"):
        d = slab == "doped"
        result["xtb"][f"dE_{slab}_eV"] = float(geo[(d, "flat")].get_potential_energy()
                                               - geo[(d, "upright")].get_potential_energy())
    result["xtb"]["dopant_effect_eV"] = result["xtb"]["dE_doped_eV"] - result["xtb"]["dE_undoped_eV"]
    dft = {}
    if os.path.isdir(DFT):
        import ase.io

        dft = {(slab, g): ase.io.read(os.path.join(DFT, f"{n}-{slab}.xyz.gz"))
               for slab in ("doped", "undoped") for n, g in (("1", "upright"), ("3", "flat"))}
    for m in MODELS:
        pot = load_model("au2_mgo", m)
        if pot is None:
            continue
        row = {}
        for slab in ("undoped", "doped"):
            d = slab == "doped"
            (ef, qf), (eu, qu) = _energy_charge(pot, geo[(d, "flat")]), _energy_charge(pot, geo[(d, "upright")])
            row[f"dE_{slab}_eV"] = ef - eu
            row[f"au2_charge_{slab}_flat_e"], row[f"au2_charge_{slab}_upright_e"] = qf, qu
        row["dopant_effect_eV"] = row["dE_doped_eV"] - row["dE_undoped_eV"]
        result["models"][m] = row
        if dft:
            result["dft_transfer"]["models"][m] = {
                f"dE_{slab}_eV": _energy_charge(pot, dft[(slab, "flat")])[0] - _energy_charge(pot, dft[(slab, "upright")])[0]
                for slab in ("undoped", "doped")}
    result["summary"] = {"xtb_dE_undoped_eV": result["xtb"]["dE_undoped_eV"], "xtb_dE_doped_eV": result["xtb"]["dE_doped_eV"],
                         **{f"{m}_dE_{s}_eV": v[f"dE_{s}_eV"] for m, v in result["models"].items() for s in ("undoped", "doped")}}
    return result


def plot_au2_slab(result, path):
    from plotting import figure

    if "xtb" not in result:
        return
    names = ["GFN1-xTB"] + list(result["models"])
    with figure(path, (9, 4), grid=(1, 2)) as (fig, axes):
        ax = axes[0]
        for j, slab in enumerate(("undoped", "doped")):
            vals = [result["xtb"][f"dE_{slab}_eV"]] + [v[f"dE_{slab}_eV"] for v in result["models"].values()]
            ax.bar(np.arange(len(names)) + 0.4 * j - 0.2, vals, 0.4, label=slab, color=f"C{j}")
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel("E(flat) − E(upright) (eV)")
        ax.set_title("xTB-relaxed Au2 on the training slab", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[1]
        t = result["dft_transfer"]
        dnames = ["DFT"] + list(t["models"])
        for j, slab in enumerate(("undoped", "doped")):
            vals = [t["reference_dE_eV"][slab]] + [v[f"dE_{slab}_eV"] for v in t["models"].values()]
            ax.bar(np.arange(len(dnames)) + 0.4 * j - 0.2, vals, 0.4, label=slab, color=f"C{j}")
        ax.set_xticks(range(len(dnames)), dnames, rotation=30, fontsize=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title("DFT slabs (110 atoms): transfer of the xTB-trained models", fontsize=9)
        ax.legend(fontsize=7)
