#!/usr/bin/env python
"""Physics checks of the trained models (``experiments/models/*.eqlr``), each with numbers
(``experiments/results/physics/<check>.json``) and a figure (``experiments/results/*.png``):

* ``far_h``: the charge on the far H of the carbon chain (the H farthest from the other H
  atoms: in C10H3+ the lone H at the unprotonated end, 12 Å from the proton), neutral against
  protonated, predicted against the reference Mulliken charges of the same test geometries.
* ``ag3``: Ag3 geometries labelled in both charge states; for the pairs with neither member in
  the training split, the error of E(Q = +1) − E(Q = −1) and the force RMSE of each state. A
  short-range model gives one energy per geometry, so its ΔE error is the reference ΔE itself.
* ``box``: one C10H3+ test geometry in cubic periodic boxes of growing edge L; the LR energy
  (Ewald, neutralising background) against the open-boundary energy, which it must approach
  as the Makov-Payne term −k_e q² α / (2L) predicts (α the simple-cubic Madelung constant), with
  a remainder falling as 1/L³.
* ``au2_slab``: Au2 flat against upright on the undoped and Al-doped MgO slab, on GFN1-xTB
  relaxed geometries (``physics_slab.py``), and on the four DFT slabs as a transfer test.
* ``lode``: the LODE dimers' binding curves against separation, beyond the receptive field
  (``physics_lode.py``).

    python experiments/physics.py [--checks far_h ag3 box au2_slab lode] [--relax]
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matrix import HERE, ROOT, config, run_name  # noqa: E402
from outputs import outputs as _outputs  # noqa: E402
from plotting import figure  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def _model(dataset: str, model: str):
    import eqlr_jax

    path = os.path.join(HERE, "models", run_name(dataset, model) + ".eqlr")
    return eqlr_jax.load(path) if os.path.exists(path) else None


@functools.lru_cache(maxsize=None)
def _split(dataset: str):
    """(frames, splits) of a dataset as its runs split it (loaded once per process)."""
    from eqlr_jax.train import load_config
    from eqlr_jax.train.trainer import prepare

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return prepare(load_config(None, base=config(dataset, "lr_r3")))
    finally:
        os.chdir(cwd)


def far_h_index(structure) -> int:
    hs = np.flatnonzero(structure.numbers == 1)
    d = np.linalg.norm(structure.positions[hs][:, None] - structure.positions[hs][None], axis=-1)
    return int(hs[np.argmax((d + 1e9 * np.eye(len(hs))).min(axis=1))])


def check_far_h(models=("lr_r3", "lr_r5")) -> dict:
    frames, splits = _split("carbon_chain")
    test = [frames[i] for i in splits["test"]]
    result = {"n_test": len(test), "models": {}}
    for q, name in ((0.0, "neutral"), (1.0, "protonated")):
        sel = [f for f in test if f.structure.total_charge == q]
        result[f"reference_{name}"] = [float(f.charges[far_h_index(f.structure)]) for f in sel]
    for m in models:
        pot = _model("carbon_chain", m)
        if pot is None:
            continue
        row = {}
        for q, name in ((0.0, "neutral"), (1.0, "protonated")):
            sel = [f for f in test if f.structure.total_charge == q]
            row[name] = [float(_outputs(pot, f.structure)["charges"][far_h_index(f.structure)]) for f in sel]
        result["models"][m] = row
    summary = {k: float(np.mean(v)) for k, v in result.items() if k.startswith("reference_")}
    for m, row in result["models"].items():
        for name, v in row.items():
            summary[f"{m}_{name}"] = float(np.mean(v))
            ref = np.array(result[f"reference_{name}"])
            summary[f"{m}_{name}_rmse_me"] = float(1e3 * np.sqrt(np.mean((np.array(v) - ref) ** 2)))
    result["summary"] = summary
    _plot_far_h(result, os.path.join(RESULTS, "far_h_charge.png"))
    return result


def _plot_far_h(result, path):
    with figure(path) as (fig, ax):
        for i, (m, row) in enumerate(result["models"].items()):
            for name, marker in (("neutral", "o"), ("protonated", "s")):
                ax.scatter(result[f"reference_{name}"], row[name], s=12, marker=marker, color=f"C{i}",
                           label=f"{m}, {name}", alpha=0.7)
        ax.plot([0.0, 0.25], [0.0, 0.25], color="k", lw=0.8)
        ax.set_xlabel("reference far-H charge (e, GFN2-xTB Mulliken)")
        ax.set_ylabel("predicted far-H charge (e)")
        ax.set_title("carbon chain, test split: the H 12 Å from the proton")
        ax.legend(fontsize=7)


def check_ag3(models=("sr_r5", "lr_r5", "lr_r3", "sr_r3")) -> dict:
    frames, splits = _split("ag3")
    seen = set(int(i) for i in splits["train"])
    by_geometry = {}
    for i, f in enumerate(frames):
        key = tuple(np.round(f.structure.positions, 5).ravel())
        by_geometry.setdefault(key, {})[f.structure.total_charge] = i
    pairs = [(d[1.0], d[-1.0]) for d in by_geometry.values()
             if 1.0 in d and -1.0 in d and d[1.0] not in seen and d[-1.0] not in seen]
    ref_de = np.array([frames[p].energy - frames[m].energy for p, m in pairs])
    result = {"n_pairs": len(pairs), "reference_dE_mean_eV": float(np.mean(ref_de)), "models": {}}
    for m in models:
        pot = _model("ag3", m)
        if pot is None:
            continue
        de, fp, fm = [], [], []
        for p, q in pairs:
            a, b = _outputs(pot, frames[p].structure), _outputs(pot, frames[q].structure)
            de.append(a["energy"] - b["energy"])
            fp.append(a["forces"] - frames[p].forces)
            fm.append(b["forces"] - frames[q].forces)
        de = np.array(de)
        result["models"][m] = {"dE_rmse_meV": float(1e3 * np.sqrt(np.mean((de - ref_de) ** 2))),
                               "dE_mean_eV": float(np.mean(de)),
                               "forces_rmse_plus_meV_A": float(1e3 * np.sqrt(np.mean(np.square(fp)))),
                               "forces_rmse_minus_meV_A": float(1e3 * np.sqrt(np.mean(np.square(fm)))),
                               "dE": de.tolist()}
    result["reference_dE"] = ref_de.tolist()
    _plot_ag3(result, os.path.join(RESULTS, "ag3_charge_states.png"))
    return result


def _plot_ag3(result, path):
    ref = np.array(result["reference_dE"])
    with figure(path) as (fig, ax):
        for i, (m, row) in enumerate(result["models"].items()):
            ax.scatter(ref, row["dE"], s=10, color=f"C{i}", label=f"{m} (RMSE {row['dE_rmse_meV']:.0f} meV)")
        if len(ref):
            ax.plot([ref.min(), ref.max()], [ref.min(), ref.max()], color="k", lw=0.8)
        ax.set_xlabel("reference E(Ag3+) − E(Ag3−) (eV)")
        ax.set_ylabel("predicted (eV)")
        ax.set_title(f"Ag3, one geometry in both charge states ({result['n_pairs']} unseen pairs)")
        ax.legend(fontsize=7)


def check_box(models=("lr_r3", "lr_r5"), edges=(20.0, 25.0, 30.0, 40.0, 60.0, 80.0)) -> dict:
    """With the first of ``models`` that has been trained."""
    import eqlr_jax

    model = next((m for m in models if _model("carbon_chain", m) is not None), None)
    if model is None:
        return {}
    pot = _model("carbon_chain", model)
    frames, splits = _split("carbon_chain")
    frame = next(frames[i] for i in splits["test"] if frames[i].structure.total_charge == 1.0)
    s = frame.structure
    q = float(s.total_charge)
    centred = s.positions - s.positions.mean(axis=0)
    e_open = _outputs(pot, eqlr_jax.Structure(numbers=s.numbers, positions=centred, cell=np.zeros((3, 3)),
                                              pbc=np.zeros(3, bool), total_charge=q))["energy"]
    rows = []
    for L in edges:
        periodic = eqlr_jax.Structure(numbers=s.numbers, positions=centred + L / 2, cell=np.eye(3) * L,
                                      pbc=(True, True, True), total_charge=q)
        rows.append({"L_A": L, "energy_eV": _outputs(pot, periodic)["energy"]})
    inv = np.array([1.0 / r["L_A"] for r in rows])
    de = np.array([r["energy_eV"] - e_open for r in rows])
    # the leading finite-size term of a charge q in a cubic box with a neutralising background
    # (Makov & Payne 1995): -k_e q^2 alpha / (2 L), alpha the simple-cubic Madelung constant
    madelung = -COULOMB_EV_A * MADELUNG_SC * q ** 2 / 2.0 * inv
    rest = de - madelung
    for r, m, x in zip(rows, madelung, rest):
        r.update(difference_eV=float(r["energy_eV"] - e_open), madelung_term_eV=float(m), remainder_eV=float(x))
    result = {"model": model, "total_charge_e": q, "energy_open_eV": e_open, "rows": rows,
              "leading_coefficient_eV_A": float(-COULOMB_EV_A * MADELUNG_SC * q ** 2 / 2),
              "largest_box_difference_eV": float(de[-1]), "largest_box_remainder_eV": float(rest[-1])}
    _plot_box(inv, de, madelung, os.path.join(RESULTS, "charged_box.png"), model)
    return result


COULOMB_EV_A = 14.399645  # e^2 / (4 pi eps0), eV Å
MADELUNG_SC = 2.837297    # simple-cubic Madelung constant of a point charge in a neutralising background


def _plot_box(inv, de, madelung, path, model):
    with figure(path, (5.5, 4)) as (fig, ax):
        ax.plot(inv, de, "o", label=f"{model}: E(L) − E(open)")
        ax.plot(inv, madelung, "--", label="−k_e q² α / (2L) (Makov–Payne, point charge)")
        ax.plot(inv, de - madelung, "s", label="remainder (O(1/L³): the charge's spread)")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_xlabel("1 / L (1/Å)")
        ax.set_ylabel("energy difference (eV)")
        ax.set_title("C10H3+ in a cubic periodic box of edge L")
        ax.legend(fontsize=7)


def check_au2_slab(relax: bool = False) -> dict:
    from physics_slab import check_au2_slab, plot_au2_slab

    result = check_au2_slab(_model, compute=relax)
    plot_au2_slab(result, os.path.join(RESULTS, "au2_flat_upright.png"))
    return result


def check_lode() -> dict:
    from physics_lode import check_lode, plot_lode

    result = check_lode(_model, _split)
    plot_lode(result, os.path.join(RESULTS, "lode_binding.png"))
    return result


CHECKS = {"far_h": check_far_h, "ag3": check_ag3, "box": check_box, "au2_slab": check_au2_slab, "lode": check_lode}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checks", nargs="+", choices=sorted(CHECKS), default=sorted(CHECKS))
    p.add_argument("--relax", action="store_true",
                   help="recompute the relaxed Au2/MgO geometries with tblite (else the stored ones)")
    args = p.parse_args(argv)
    os.makedirs(os.path.join(RESULTS, "physics"), exist_ok=True)
    for name in args.checks:
        try:
            result = CHECKS[name](args.relax) if name == "au2_slab" else CHECKS[name]()
        except Exception as e:  # one failed check (an SCF that did not converge, say) keeps the others
            import traceback

            traceback.print_exc()
            result = {"missing": f"failed: {type(e).__name__}: {e}"}
        with open(os.path.join(RESULTS, "physics", f"{name}.json"), "w") as fh:
            json.dump(result, fh, indent=1)
        print(name, json.dumps(result.get("summary", {k: v for k, v in result.items()
                                                       if not isinstance(v, (list, dict))})))


if __name__ == "__main__":
    main()
