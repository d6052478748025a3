#!/usr/bin/env python
"""Write ``experiments/RESULTS.md`` from the logged results, never by hand: the run summaries
(``results/runs/*.json``, from ``run.py``), the inference timings (``results/inference.json``,
from ``inference.py``) and the physics checks (``results/physics/*.json``, from
``physics.py``). Also draws ``results/learning_curves.png``. Missing results are reported as
missing, unfinished runs as unfinished.

    python experiments/report.py
"""
from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matrix import BUDGET, DATASETS, HERE, LEARNING_CURVE, MODELS, receptive_field, run_name  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def _load(pattern):
    out = {}
    for path in sorted(glob.glob(os.path.join(RESULTS, pattern))):
        with open(path) as fh:
            out[os.path.basename(path).rsplit(".", 1)[0]] = json.load(fh)
    return out


def _rmse(run, key):
    t = (run or {}).get("test", {}).get(key)
    return None if t is None else t["rmse"]


def _fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def epochs_to_converge(run, within=0.05) -> int | None:
    """The first epoch whose validation force RMSE is within 5 % of the run's best."""
    f = [(r["epoch"], r.get("valid_forces_rmse")) for r in run.get("valid", []) if r.get("valid_forces_rmse")]
    if not f:
        return None
    best = min(v for _, v in f)
    return next(e for e, v in f if v <= (1 + within) * best)


def main_table(runs) -> list[str]:
    lines = ["| dataset | metric | " + " | ".join(f"{m} ({receptive_field(m):g} Å)" for m in MODELS) + " |",
             "|---|---|" + "---|" * len(MODELS)]
    for d in DATASETS:
        cells = {m: runs.get(run_name(d, m)) for m in MODELS}
        for key, label in (("energy", "E (meV/atom)"), ("forces", "F (meV/Å)"), ("charges", "q (me)"),
                           ("dipole", "μ (me·Å)")):
            vals = [_rmse(cells[m], key) for m in MODELS]
            if all(v is None for v in vals) and key in ("charges", "dipole"):
                continue
            lines.append(f"| {d} | {label} | " + " | ".join(_fmt(v) for v in vals) + " |")
        state = []
        for m in MODELS:
            r = cells[m]
            state.append("not run" if r is None else f"{r['epochs_done']}/{BUDGET['epochs']}"
                         + ("" if r["finished"] else " (unfinished)"))
        lines.append(f"| {d} | epochs | " + " | ".join(state) + " |")
    return lines


def at_common_epoch(runs) -> list[str]:
    """Validation RMSEs of each dataset's models at the last epoch all of them reached: a fair
    comparison while runs are unfinished (the test table compares best models, whatever epoch)."""
    lines = ["| dataset | epoch | metric | " + " | ".join(MODELS) + " |", "|---|---|---|" + "---|" * len(MODELS)]
    for d in DATASETS:
        cells = {m: runs.get(run_name(d, m)) for m in MODELS}
        done = [r["epochs_done"] for r in cells.values() if r and r["epochs_done"]]
        if len(done) < 2:
            continue
        e = min(done)
        for key, label in (("valid_energy_rmse", "E (meV/atom)"), ("valid_forces_rmse", "F (meV/Å)")):
            vals = []
            for m in MODELS:
                row = next((v for v in (cells[m] or {}).get("valid", []) if v["epoch"] == e), None)
                vals.append(None if row is None else row.get(key))
            lines.append(f"| {d} | {e} | {label} | " + " | ".join(_fmt(v) for v in vals) + " |")
    return lines if len(lines) > 2 else ["(fewer than two runs of any dataset so far)"]


def claims(runs, inference, physics) -> list[str]:
    out = []

    def pair(d, a, b, key="forces"):
        ra, rb = runs.get(run_name(d, a)), runs.get(run_name(d, b))
        va, vb = _rmse(ra, key), _rmse(rb, key)
        done = ra is not None and rb is not None and ra["finished"] and rb["finished"]
        return va, vb, done

    def verdict(rows, better="lower"):
        have = [(d, a, b, done) for d, a, b, done in rows if a is not None and b is not None]
        if not have:
            return "unclear (no results yet)", have
        wins = sum(a < b for _, a, b, _ in have)
        unfinished = any(not done for *_, done in have)
        word = ("confirmed" if wins == len(have) else "refuted" if wins == 0 else "mixed")
        return word + (" so far; some runs are unfinished, so unclear" if unfinished else ""), have

    # 1: LR beats SR (same cutoff, both radii) on energies and forces
    rows = []
    for d in DATASETS:
        for r in ("r5", "r3"):
            for key in ("energy", "forces"):
                a, b, done = pair(d, f"lr_{r}", f"sr_{r}", key)
                rows.append((f"{d} {key} {r}", a, b, done))
    v, have = verdict(rows)
    detail = (f" LR wins {sum(a < b for _, a, b, _ in have)} of {len(have)} comparisons at equal cutoff (test RMSE, "
              "meV/atom and meV/Å, LR vs SR: " + "; ".join(f"{n}: {a:.1f} vs {b:.1f}" for n, a, b, _ in have) + ").")
    out.append(f"**Claim 1, LR beats SR on energies and forces: {v}.**" + (detail if have else "")
               + " The invariant 4G-HDNNP is not part of this comparison (no implementation here).")
    # 2: LR at 3 Å beats SR at 5 Å
    rows = [(d, *pair(d, "lr_r3", "sr_r5")) for d in DATASETS]
    v, have = verdict(rows)
    out.append(f"**Claim 2, LR at 3 Å is more accurate than SR at 5 Å: {v}.**"
               + (" Test force RMSE (meV/Å), lr_r3 vs sr_r5: " + "; ".join(f"{d}: {a:.1f} vs {b:.1f}"
                                                                         for d, a, b, _ in have) + "." if have else ""))
    # 3: inference time
    if inference:
        ratios = {k: v["ms_per_structure"] for k, v in inference.items()}
        parts = []
        for d in DATASETS:
            sr = ratios.get(run_name(d, "sr_r5"))
            for m in ("lr_r5", "lr_r3"):
                lr = ratios.get(run_name(d, m))
                if sr and lr:
                    parts.append((d, m, lr / sr))
        if parts:
            word = "confirmed" if all(r <= 1.2 for *_, r in parts) else "refuted" if all(r > 1.2 for *_, r in parts) \
                else "mixed"
            out.append(f"**Claim 3, LR inference time comparable to or below SR's: {word}** (comparable: at most "
                       "1.2× SR at 5 Å). Time per structure relative to sr_r5: "
                       + "; ".join(f"{d} {m} {r:.2f}×" for d, m, r in parts) + ".")
    else:
        out.append("**Claim 3, inference time: unclear** (no timings yet: run `experiments/inference.py`).")
    # 4: epochs to converge
    rows = []
    for d in DATASETS:
        for r in ("r5", "r3"):
            a, b = runs.get(run_name(d, f"lr_{r}")), runs.get(run_name(d, f"sr_{r}"))
            if a and b:
                ea, eb = epochs_to_converge(a), epochs_to_converge(b)
                if ea and eb:
                    rows.append((f"{d} {r}", ea, eb, a["finished"] and b["finished"]))
    if rows:
        more = sum(ea > eb for _, ea, eb, _ in rows)
        word = "confirmed" if more == len(rows) else "refuted" if more == 0 else "mixed"
        if any(not done for *_, done in rows):
            word += " so far; runs unfinished, so unclear"
        out.append(f"**Claim 4, LR needs more epochs: {word}.** Epochs to reach within 5 % of the best validation "
                   "force RMSE, LR vs SR: " + "; ".join(f"{n}: {a} vs {b}" for n, a, b, _ in rows) + ".")
    else:
        out.append("**Claim 4, epochs to converge: unclear** (no finished pairs yet).")
    # 5: small data
    lc = LEARNING_CURVE
    rows = []
    for d in lc["datasets"]:
        sr, lr = runs.get(run_name(d, lc["models"][0], 100)), runs.get(run_name(d, lc["models"][1], 100))
        if sr and lr and _rmse(sr, "forces") and _rmse(lr, "forces"):
            rows.append((d, _rmse(lr, "forces"), _rmse(sr, "forces"), sr["finished"] and lr["finished"]))
    if rows:
        worse = sum(a > b for _, a, b, _ in rows)
        word = "confirmed" if worse == len(rows) else "refuted" if worse == 0 else "mixed"
        out.append(f"**Claim 5, at 100 training frames LR is worse than SR: {word}.** Force RMSE (meV/Å) at 100 "
                   "frames, LR vs SR: " + "; ".join(f"{d}: {a:.1f} vs {b:.1f}" for d, a, b, _ in rows) + ".")
    else:
        out.append("**Claim 5, small data: unclear** (learning-curve runs not done yet).")
    return out


def targets(runs) -> list[str]:
    out = ["| dataset | metric | best LR | best SR | LR / SR | goal | met |", "|---|---|---|---|---|---|---|"]
    for d, key, goal in (("carbon_chain", "forces", 0.5), ("ag3", "forces", 0.5), ("nacl", "forces", 0.5),
                         ("ag3", "energy", 0.1)):
        lr = [v for v in (_rmse(runs.get(run_name(d, m)), key) for m in MODELS if m.startswith("lr")) if v]
        sr = [v for v in (_rmse(runs.get(run_name(d, m)), key) for m in MODELS if m.startswith("sr")) if v]
        if lr and sr:
            r = min(lr) / min(sr)
            met = "yes" if r <= goal else f"no (by {r / goal:.1f}×)"
            out.append(f"| {d} | {key} | {min(lr):.1f} | {min(sr):.1f} | {r:.2f} | ≤ {goal} | {met} |")
        else:
            out.append(f"| {d} | {key} | – | – | – | ≤ {goal} | not run yet |")
    return out


def physics_section(physics) -> list[str]:
    out = []
    f = physics.get("far_h", {}).get("summary")
    if f:
        out.append("**1. Far-H charge of the carbon chain** (`results/far_h_charge.png`), mean over the test split, e:")
        out.append("")
        out.append("| | neutral C10H2 | protonated C10H3+ | shift | RMSE neutral / protonated (me) |")
        out.append("|---|---|---|---|---|")
        out.append(f"| reference (GFN2-xTB Mulliken) | {f['reference_neutral']:+.3f} | {f['reference_protonated']:+.3f} "
                   f"| {f['reference_protonated'] - f['reference_neutral']:+.3f} | |")
        for m in ("lr_r3", "lr_r5"):
            if f"{m}_neutral" in f:
                out.append(f"| {m} | {f[m + '_neutral']:+.3f} | {f[m + '_protonated']:+.3f} | "
                           f"{f[m + '_protonated'] - f[m + '_neutral']:+.3f} | {f[m + '_neutral_rmse_me']:.1f} / "
                           f"{f[m + '_protonated_rmse_me']:.1f} |")
        out.append("| SR models | no charges | no charges | | |")
    else:
        out.append("**1. Far-H charge**: not run yet.")
    out.append("")
    a = physics.get("ag3")
    if a and a.get("models"):
        out.append(f"**2. Ag3+ against Ag3− at one geometry** (`results/ag3_charge_states.png`; {a['n_pairs']} "
                   f"geometries with neither label in training; mean reference ΔE = {a['reference_dE_mean_eV']:.2f} eV):")
        out.append("")
        out.append("| model | ΔE RMSE (meV) | mean predicted ΔE (eV) | F RMSE Q=+1 / Q=−1 (meV/Å) |")
        out.append("|---|---|---|---|")
        for m, r in a["models"].items():
            out.append(f"| {m} | {r['dE_rmse_meV']:.0f} | {r['dE_mean_eV']:.2f} | {r['forces_rmse_plus_meV_A']:.0f} / "
                       f"{r['forces_rmse_minus_meV_A']:.0f} |")
    else:
        out.append("**2. Ag3+ against Ag3−**: not run yet (needs the Ag3 models).")
    out.append("")
    out.append("**3. Au2 flat against upright on the doped and undoped slab**: not run yet (needs tblite "
               "relaxations; `experiments/datasets/generate_xtb.py` has the calculator set-up).")
    out.append("")
    out.append("**4. LODE charged dimers, binding energy against separation**: not run yet.")
    out.append("")
    b = physics.get("box")
    if b and b.get("rows"):
        out.append(f"**5. C10H3+ in a growing periodic box** (`results/charged_box.png`, model {b['model']}; one "
                   "test geometry, charges re-equilibrated in each box). The periodic energy must approach the "
                   "open-boundary one as the Makov–Payne term −k_e q² α / (2L) = "
                   f"{b['leading_coefficient_eV_A']:.2f} eV·Å / L predicts:")
        out.append("")
        out.append("| L (Å) | E(L) − E(open) (eV) | −k_e q² α / (2L) (eV) | remainder (eV) |")
        out.append("|---|---|---|---|")
        out += [f"| {r['L_A']:g} | {r['difference_eV']:+.4f} | {r['madelung_term_eV']:+.4f} | {r['remainder_eV']:+.4f} |"
                for r in b["rows"]]
        out.append("")
        out.append("The remainder falls roughly as 1/L³ (the charge's spread over the 13 Å chain): the energy converges.")
    else:
        out.append("**5. Charged molecule in a growing box**: not run yet.")
    return out


def learning_curves(runs) -> list[str]:
    lc = LEARNING_CURVE
    lines = ["| dataset | model | " + " | ".join(str(n) for n in lc["n_train"]) + " | all |",
             "|---|---|" + "---|" * (len(lc["n_train"]) + 1)]
    have = False
    for d in lc["datasets"]:
        for m in lc["models"]:
            vals = [_rmse(runs.get(run_name(d, m, n)), "forces") for n in lc["n_train"]]
            have |= any(v is not None for v in vals)
            vals.append(_rmse(runs.get(run_name(d, m)), "forces"))
            lines.append(f"| {d} | {m} | " + " | ".join(_fmt(v) for v in vals) + " |")
    if have:
        _plot_learning_curves(runs)
    return lines


def _plot_learning_curves(runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lc = LEARNING_CURVE
    fig, axes = plt.subplots(1, len(lc["datasets"]), figsize=(10, 4))
    for ax, d in zip(np.atleast_1d(axes), lc["datasets"]):
        for m in lc["models"]:
            pts = [(n, _rmse(runs.get(run_name(d, m, n)), "forces")) for n in lc["n_train"]]
            pts = [(n, v) for n, v in pts if v is not None]
            if pts:
                ax.loglog(*zip(*pts), "o-", label=m)
        ax.set_title(d)
        ax.set_xlabel("training frames")
        ax.set_ylabel("test force RMSE (meV/Å)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "learning_curves.png"), dpi=120)
    plt.close(fig)


def main():
    runs = _load("runs/*.json")
    inference = _load("inference.json").get("inference", {}).get("inference", {})  # file name, then key
    physics = _load("physics/*.json")
    lines = ["# Results: the NequIP-LR claims on our data", "",
             "Generated by `experiments/report.py` from the logged results; do not edit by hand. "
             "How to rerun: `experiments/README.md`. All data are GFN-xTB analogues except SPICE (DFT): "
             "errors are not comparable with published DFT numbers, only between models here.", "",
             f"Every model: 2 interaction layers, 32 features, l_max 1; budget {BUDGET['epochs']} epochs, batch "
             f"{BUDGET['batch_size']}, early stop after {BUDGET['early_stopping_patience']} epochs without validation "
             "improvement; one split per dataset (seed 0, 80/10/10). Receptive field in the header "
             "(layers × r_max; the LR models add the global charge redistribution). Test-split RMSEs:", ""]
    lines += main_table(runs)
    lines += ["", "Validation RMSEs at the last epoch that all of a dataset's runs reached (a like-for-like "
              "view while runs are unfinished):", ""] + at_common_epoch(runs)
    lines += ["", "## Claims", ""]
    for c in claims(runs, inference, physics):
        lines += [c, ""]
    lines += ["## Targets", "", "Our standing goal: LR force RMSE at most 0.5× SR's on the carbon chain, Ag3 and "
              "NaCl, and LR energy RMSE on Ag3 at most 0.1× SR's (LR and SR at the same cutoff, the better LR "
              "against the better SR):", ""] + targets(runs) + [""]
    lines += ["## Learning curves (test force RMSE, meV/Å)", ""] + learning_curves(runs) + [""]
    lines += ["## Physics checks", ""] + physics_section(physics) + [""]
    lines += ["## Runs", "", "Every run's state (`python experiments/run.py --list`); wall-clock training time on the "
              "machine that ran it (2 CPU cores, often shared with other jobs, pauses included):", "",
              "| run | epochs | finished | training (min) | s per epoch | receptive field (Å) |", "|---|---|---|---|---|---|"]
    for name, r in sorted(runs.items()):
        per = r["train_seconds"] / r["epochs_done"] if r["epochs_done"] else float("nan")
        lines.append(f"| {name} | {r['epochs_done']}/{r['epoch_budget']} | {'yes' if r['finished'] else 'no'} | "
                     f"{r['train_seconds'] / 60:.1f} | {per:.1f} | {r['receptive_field_A']:g} |")
    lines.append("")
    if inference:
        lines += ["## Inference time", "", "| run | ms per structure | device |", "|---|---|---|"]
        lines += [f"| {k} | {v['ms_per_structure']:.2f} | {v['device']} |" for k, v in sorted(inference.items())]
        lines.append("")
    with open(os.path.join(HERE, "RESULTS.md"), "w") as fh:
        fh.write("\n".join(lines))
    print(f"wrote {os.path.join(HERE, 'RESULTS.md')} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
