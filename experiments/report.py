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
from matrix import BUDGET, CLAIM_DATASETS, DATASETS, HERE, LEARNING_CURVE, MODELS, receptive_field, run_name  # noqa: E402
from report_physics import physics_section  # noqa: E402

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


def converged(run) -> bool:
    """Stopped early (no validation improvement for the patience) or reached the epoch budget;
    a run stopped by the time cap may still have been improving."""
    return bool(run and run["finished"] and run.get("stopped_by") in ("early stop", "epochs"))


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
            state.append("not run" if r is None else f"{r['epochs_done']}"
                         + (f" ({r.get('stopped_by') or 'finished'})" if r["finished"] else " (unfinished)"))
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
    for d in CLAIM_DATASETS:
        for r in ("r5", "r3"):
            for key in ("energy", "forces"):
                a, b, done = pair(d, f"lr_{r}", f"sr_{r}", key)
                rows.append((f"{d} {key} {r}", a, b, done))
    v, have = verdict(rows)
    detail = (f" LR wins {sum(a < b for _, a, b, _ in have)} of {len(have)} comparisons at equal cutoff (test RMSE, "
              "meV/atom and meV/Å, LR vs SR: " + "; ".join(f"{n}: {a:.1f} vs {b:.1f}" for n, a, b, _ in have) + ").")
    fewer = [(d, r) for d in CLAIM_DATASETS for r in ("r5", "r3")
             if runs.get(run_name(d, f"lr_{r}")) and runs.get(run_name(d, f"sr_{r}"))
             and runs[run_name(d, f"lr_{r}")]["epochs_done"] < runs[run_name(d, f"sr_{r}")]["epochs_done"]]
    if have:
        detail += (f" Why: LR wins outright where the total charge decides the energy (Ag3+ against Ag3−); elsewhere "
                   f"the comparison is at equal training time, and LR had fewer epochs than SR in {len(fewer)} of "
                   f"the {len({(n.split()[0], n.split()[-1]) for n, *_ in have})} pairs (its step costs more), so "
                   "it is a claim about accuracy per CPU minute here, not at convergence.")
    out.append(f"**Claim 1, LR beats SR on energies and forces: {v}.**" + (detail if have else "")
               + " The invariant 4G-HDNNP is not part of this comparison (no implementation here).")
    # 2: LR at 3 Å beats SR at 5 Å
    rows = [(d, *pair(d, "lr_r3", "sr_r5")) for d in CLAIM_DATASETS]
    v, have = verdict(rows)
    out.append(f"**Claim 2, LR at 3 Å is more accurate than SR at 5 Å: {v}.**"
               + (" Test force RMSE (meV/Å), lr_r3 vs sr_r5: " + "; ".join(f"{d}: {a:.1f} vs {b:.1f}"
                                                                         for d, a, b, _ in have) + "." if have else ""))
    # 3: inference time
    if inference:
        ratios = {k: v["ms_per_structure"] for k, v in inference.items()}
        parts = []
        for d in CLAIM_DATASETS:
            sr = ratios.get(run_name(d, "sr_r5"))
            for m in ("lr_r5", "lr_r3"):
                lr = ratios.get(run_name(d, m))
                if sr and lr:
                    parts.append((d, m, lr / sr))
        if parts:
            word = "confirmed" if all(r <= 1.2 for *_, r in parts) else "refuted" if all(r > 1.2 for *_, r in parts) \
                else "mixed"
            ok = sorted({d for d, m, r in parts if r <= 1.2})
            slow = sorted({d for d, m, r in parts if r > 1.2} - set(ok))
            out.append(f"**Claim 3, LR inference time comparable to or below SR's: {word}** (comparable: at most "
                       "1.2× SR at 5 Å). Time per structure relative to sr_r5: "
                       + "; ".join(f"{d} {m} {r:.2f}×" for d, m, r in parts) + ". Comparable or faster on "
                       + (", ".join(ok) or "none") + "; slower on " + (", ".join(slow) or "none")
                       + " (one structure per call: on small structures QEq and the Coulomb sum are a large share "
                       "of the call; on larger ones the network dominates, and at r_max 3 Å it has far fewer edges than "
                       "at 5 Å).")
    else:
        out.append("**Claim 3, inference time: unclear** (no timings yet: run `experiments/inference.py`).")
    # 4: epochs to converge: only runs that converged (early stop) say how many epochs that took;
    # a run cut by the time cap is a lower bound.
    rows = []
    for d in CLAIM_DATASETS:
        for r in ("r5", "r3"):
            a, b = runs.get(run_name(d, f"lr_{r}")), runs.get(run_name(d, f"sr_{r}"))
            if a and b:
                rows.append((f"{d} {r}", epochs_to_converge(a), epochs_to_converge(b), converged(a), converged(b)))

    def show(e, conv):
        return "–" if e is None else f"{e}" if conv else f"≥{e} (time cap)"

    both = [(n, ea, eb) for n, ea, eb, ca, cb in rows if ca and cb and ea and eb]
    if both:
        more = sum(ea > eb for _, ea, eb in both)
        word = "confirmed" if more == len(both) else "refuted" if more == 0 else "mixed"
        word += f" on the {len(both)} pairs where both runs converged"
    else:
        word = "unclear (no pair where both runs converged within the budget)"
    if rows:
        out.append(f"**Claim 4, LR needs more epochs to converge: {word}.** Epochs to come within 5 % of the run's best "
                   "validation force RMSE, LR vs SR (a run the time cap stopped may not have converged: its "
                   "figure is a lower bound): " + "; ".join(f"{n}: {show(ea, ca)} vs {show(eb, cb)}"
                                                            for n, ea, eb, ca, cb in rows) + ".")
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
    from plotting import figure

    lc = LEARNING_CURVE
    with figure(os.path.join(RESULTS, "learning_curves.png"), (10, 4), grid=(1, len(lc["datasets"]))) as (fig, axes):
        _draw_learning_curves(runs, axes)


def _draw_learning_curves(runs, axes):
    lc = LEARNING_CURVE
    for ax, d in zip(np.atleast_1d(axes), lc["datasets"]):
        for m in lc["models"]:
            pts = [(n, _rmse(runs.get(run_name(d, m, n)), "forces")) for n in lc["n_train"]]
            full = runs.get(run_name(d, m))
            if full and full.get("n_train_frames"):
                pts.append((full["n_train_frames"], _rmse(full, "forces")))
            pts = [(n, v) for n, v in pts if v is not None]
            if pts:
                ax.loglog(*zip(*pts), "o-", label=m)
        ax.set_title(d)
        ax.set_xlabel("training frames")
        ax.set_ylabel("test force RMSE (meV/Å)")
        ax.legend()


def main():
    runs = _load("runs/*.json")
    inference = _load("inference.json").get("inference", {}).get("inference", {})  # file name, then key
    physics = _load("physics/*.json")
    lines = ["# Results: the NequIP-LR claims on our data", "",
             "Generated by `experiments/report.py` from the logged results; do not edit by hand. "
             "How to rerun: `experiments/README.md`. All data are GFN-xTB analogues except SPICE (DFT): "
             "errors are not comparable with published DFT numbers, only between models here.", "",
             f"Every model: 2 interaction layers, 32 features, l_max 1. The same budget for every run: at most "
             f"{BUDGET['epochs']} epochs and at most {BUDGET['max_minutes']:g} minutes of training on one CPU core "
             f"(wall clock, JIT compilation included, which takes longer for the LR models; whichever limit "
             f"comes first), batch {BUDGET['batch_size']}, early stop after "
             f"{BUDGET['early_stopping_patience']} epochs without validation improvement; one split per dataset "
             "(seed 0, 80/10/10). The epochs row says how many epochs each run had and what stopped it: with the "
             "time cap a faster model gets more epochs, so the table compares models at equal training time. "
             "Receptive field in the header (layers × r_max; the LR models add the global charge "
             "redistribution). The lode rows are for physics check 4 (48 training frames), not for the claims. "
             "Test-split RMSEs (parity plots: `results/parity/<run>.png`):", ""]
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
    lines += ["## Runs", "", "Every run's state (`python experiments/run.py --list`); training time on one core of the "
              "machine that ran it (`run.py --workers 2`: two runs at a time on a 2-core machine):", "",
              "| run | training frames | epochs | stopped by | training (min) | s per epoch | receptive field (Å) |",
              "|---|---|---|---|---|---|---|"]
    for name, r in sorted(runs.items()):
        per = r["train_seconds"] / r["epochs_done"] if r["epochs_done"] else float("nan")
        lines.append(f"| {name} | {r.get('n_train_frames', '–')} | {r['epochs_done']} | "
                     f"{(r.get('stopped_by') or 'finished') if r['finished'] else 'unfinished'} | "
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
