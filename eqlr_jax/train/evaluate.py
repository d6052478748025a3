"""Evaluate a model on a dataset: RMSE and MAE per property, and parity plots.

Units of the report: energy meV/atom, forces meV/Å, stress meV/Å³, charges me (milli-e),
dipole me·Å.
"""
from __future__ import annotations

import os

import numpy as np

from ..models import long_range_spec
from .batches import BatchMaker
from .data import Keys, load_frames, reference_energies

__all__ = ["predictions", "metrics", "evaluate", "parity_plot"]

_UNITS = {"energy": "meV/atom", "forces": "meV/Å", "stress": "meV/Å³", "charges": "me", "dipole": "me·Å"}


def predictions(potential, frames, batch_size: int = 16, dtype=np.float32) -> dict:
    """Reference and predicted values of every property present: ``{name: (ref, pred)}``,
    flat NumPy arrays (energy per atom, eV; forces eV/Å; stress eV/Å³; charges e; dipole e·Å)."""
    maker = BatchMaker(frames, potential.cutoff, potential.species, long_range_spec(potential.config, potential.runtime),
                       batch_size, dtype, levels=1)
    pairs = {k: ([], []) for k in _UNITS}
    for idx in maker.batches(np.arange(len(frames))):
        g, t = maker.make(idx)
        out = potential(g, compute_stress=bool(np.any(np.asarray(t.stress_mask))))
        em, fm = np.asarray(t.energy_mask), np.asarray(t.forces_mask)
        n_atoms = np.asarray(t.n_atoms)
        pairs["energy"][0].append(np.asarray(t.energy)[em] / n_atoms[em])
        pairs["energy"][1].append(np.asarray(out["energy"])[em] / n_atoms[em])
        pairs["forces"][0].append(np.asarray(t.forces)[fm].ravel())
        pairs["forces"][1].append(np.asarray(out["forces"])[fm].ravel())
        sm = np.asarray(t.stress_mask)
        if "stress" in out and sm.any():
            pairs["stress"][0].append(np.asarray(t.stress)[sm].ravel())
            pairs["stress"][1].append(np.asarray(out["stress"])[sm].ravel())
        if "charges" in out:
            qm, dm = np.asarray(t.charges_mask), np.asarray(t.dipole_mask)
            pairs["charges"][0].append(np.asarray(t.charges)[qm])
            pairs["charges"][1].append(np.asarray(out["charges"])[qm])
            pairs["dipole"][0].append(np.asarray(t.dipole)[dm].ravel())
            pairs["dipole"][1].append(np.asarray(out["dipole"])[dm].ravel())
    result = {}
    for k, (ref, pred) in pairs.items():
        if ref and sum(len(r) for r in ref):
            result[k] = (np.concatenate(ref).astype(np.float64), np.concatenate(pred).astype(np.float64))
    with_energy = [f for f in frames if f.energy is not None]
    if "energy" in result and with_energy:  # per-atom energy of each frame's composition (plots only)
        e_ref = reference_energies(with_energy, potential.species)
        lookup = {z: k for k, z in enumerate(potential.species)}
        result["_energy_baseline"] = np.array([np.mean([e_ref[lookup[int(z)]] for z in f.structure.numbers])
                                               for f in with_energy])
    return result


def metrics(pairs: dict) -> dict:
    """``{name: {"rmse": ..., "mae": ..., "n": ..., "unit": ...}}`` in milli-units (see module doc)."""
    out = {}
    for k, pair in pairs.items():
        if k.startswith("_"):
            continue
        ref, pred = pair
        err = 1000.0 * (pred - ref)
        out[k] = {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(err.size),
                  "unit": _UNITS[k]}
    return out


def parity_plot(pairs: dict, path: str, title: str = "") -> None:
    """One panel per property: predicted against reference, with the y = x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in pairs if not k.startswith("_")]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.6), squeeze=False)
    base_units = {"energy": "eV/atom", "forces": "eV/Å", "stress": "eV/Å³", "charges": "e", "dipole": "e·Å"}
    for ax, k in zip(axes[0], names):
        ref, pred = pairs[k]
        label = f"({base_units[k]})"
        if k == "energy" and "_energy_baseline" in pairs:  # composition differences would hide the errors
            base = pairs["_energy_baseline"]
            ref, pred, label = 1000.0 * (ref - base), 1000.0 * (pred - base), "− composition fit (meV/atom)"
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
        ax.scatter(ref, pred, s=4, alpha=0.6)
        rmse = (1.0 if k == "energy" and "_energy_baseline" in pairs else 1000.0) * float(
            np.sqrt(np.mean((pred - ref) ** 2)))
        ax.set_title(f"{k}: RMSE {rmse:.3g} {_UNITS[k]}", fontsize=9)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(potential, path: str, keys: Keys = Keys(), out_dir: str | None = None, batch_size: int = 16,
             dtype=np.float32) -> dict:
    """Metrics of ``potential`` on the dataset at ``path``; writes ``parity.png`` to ``out_dir``."""
    frames = load_frames(path, keys, require=())
    pairs = predictions(potential, frames, batch_size, dtype)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        parity_plot(pairs, os.path.join(out_dir, "parity.png"), os.path.basename(path))
    return metrics(pairs)
