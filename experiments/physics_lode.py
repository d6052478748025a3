"""Physics check 4: the LODE dimers' binding curves, beyond the cutoff.

Six molecular dimers (charged–charged, charged–apolar, polar–apolar, charged–polar,
polar–polar, apolar–apolar; Grisafi & Ceriotti 2019), each at ten separations of rigid
monomers. The binding energy is E(dimer) − E(A) − E(B) (eV); the reference is the dataset's
``inter_energy``, and a model's is its own dimer energy less its energies of the two monomers
cut out of the same frame, each with its own total charge (chargeA, chargeB). A short-range
model's binding energy is exactly zero once the closest atoms of A and B are farther apart than
its cutoff r_max: with no edge across the gap, no message crosses it, however many layers
(the receptive field num_layers × r_max reaches farther only along a chain of atoms). A model
with charges and Coulomb keeps the tail.

Every model of ``matrix.MODELS`` is trained on these 60 frames (``lode_<model>``, a random
80/10/10 split); the curves cover all frames, and the table says which were in training.
"""
from __future__ import annotations

import os

import numpy as np
from matrix import DATA, MODELS, ROOT

LABELS = {"CC": "charged–charged", "CA": "charged–apolar", "PA": "polar–apolar",
          "CP": "charged–polar", "PP": "polar–polar", "AA": "apolar–apolar"}


def _energy(pot, atoms, charge: float, with_charges: bool = False):
    """The model's energy (eV) of an open structure; with its charges (e; None for SR) if asked."""
    from outputs import atoms_outputs

    out = atoms_outputs(pot, atoms, charge, periodic=False)
    return (out["energy"], out["charges"]) if with_charges else out["energy"]


def dimers():
    """The 60 frames, in file order (as the training split indexes them)."""
    import ase.io

    return ase.io.read(os.path.join(ROOT, DATA, "lode-dimers", "dimers.xyz.gz"), ":")


def closest_contact(atoms) -> float:
    """The smallest distance between an atom of A and an atom of B (Å)."""
    k = int(atoms.info["indexB"])
    a, b = atoms.positions[:k], atoms.positions[k:]
    return float(np.min(np.linalg.norm(a[:, None] - b[None], axis=-1)))


def check_lode(load_model, split, labels=tuple(LABELS)) -> dict:
    """``load_model(dataset, model)`` -> potential or None; ``split(dataset)`` -> (frames, splits);
    ``labels``: the dimers to evaluate (all six by default)."""
    frames = dimers()
    _, splits = split("lode")
    train = set(int(i) for i in splits["train"])
    rows = []
    for i, a in enumerate(frames):
        if a.info["label"] not in labels:
            continue
        k = int(a.info["indexB"])
        rows.append({"index": i, "label": str(a.info["label"]), "distance_A": float(a.info["distance"]),
                     "contact_A": closest_contact(a), "reference_eV": float(a.info["inter_energy"]),
                     "in_training": i in train, "charges": (int(a.info["chargeA"]), int(a.info["chargeB"])),
                     "_parts": (a, a[:k], a[k:])})
    result = {"n_frames": len(rows), "models": {}}
    for m in MODELS:
        pot = load_model("lode", m)
        if pot is None:
            continue
        rc = MODELS[m]["r_max"]
        pred, transfer = [], []
        for r in rows:
            whole, a, b = r["_parts"]
            qa, qb = r["charges"]
            e, q = _energy(pot, whole, qa + qb, with_charges=True)
            pred.append(e - _energy(pot, a, qa) - _energy(pot, b, qb))
            # QEq's charge on molecule A in the dimer against A's integer charge
            transfer.append(None if q is None else float(np.sum(q[: len(a)]) - qa))
        pred = np.array(pred)
        ref = np.array([r["reference_eV"] for r in rows])
        beyond = np.array([r["contact_A"] > rc for r in rows])
        charged = np.array([r["label"] in ("CC", "CA", "CP") for r in rows])
        err = 1e3 * (pred - ref)
        rms = lambda sel: float(np.sqrt(np.mean(err[sel] ** 2))) if sel.any() else None  # noqa: E731
        result["models"][m] = {"r_max_A": rc, "binding_eV": pred.tolist(),
                               "rmse_meV": rms(np.ones(len(rows), bool)),
                               "rmse_beyond_cutoff_meV": rms(beyond),
                               "rmse_beyond_charged_meV": rms(beyond & charged),
                               "n_beyond": int(beyond.sum()), "n_beyond_charged": int((beyond & charged).sum()),
                               "charge_A_minus_integer_e": transfer,
                               "mean_abs_charge_error_A_charged_e": (None if transfer[0] is None else float(
                                   np.mean(np.abs(np.array(transfer)[charged]))) if charged.any() else None)}
    for r in rows:
        del r["_parts"]
    result["rows"] = rows
    result["summary"] = {f"{m}_{k}": v[k] for m, v in result["models"].items()
                         for k in ("rmse_meV", "rmse_beyond_cutoff_meV", "rmse_beyond_charged_meV")}
    return result


def plot_lode(result, path):
    from plotting import figure

    rows = result["rows"]
    with figure(path, (11, 6.5), grid=(2, 3)) as (fig, axes):
        for ax, label in zip(axes.ravel(), LABELS):
            sel = [i for i, r in enumerate(rows) if r["label"] == label]
            sel.sort(key=lambda i: rows[i]["distance_A"])
            d = [rows[i]["distance_A"] for i in sel]
            ax.plot(d, [rows[i]["reference_eV"] for i in sel], "k-o", ms=3, label="reference (DFT)")
            for j, (m, v) in enumerate(result["models"].items()):
                ax.plot(d, [v["binding_eV"][i] for i in sel], "--", marker="s", ms=2.5, color=f"C{j}",
                        label=f"{m} (r_max {v['r_max_A']:g} Å)")
            train = [rows[i]["distance_A"] for i in sel if rows[i]["in_training"]]
            ax.plot(train, [ax.get_ylim()[0]] * len(train), "|", color="0.5", ms=8)
            ax.axhline(0, color="0.8", lw=0.8)
            ax.set_title(f"{label}: {LABELS[label]}", fontsize=9)
            ax.set_xlabel("separation (Å; the dataset's distance)")
            ax.set_ylabel("binding energy (eV)")
        axes.ravel()[0].legend(fontsize=6)
        fig.suptitle("LODE dimers: E(dimer) − E(A) − E(B); ticks at the bottom: frames in training", fontsize=10)
