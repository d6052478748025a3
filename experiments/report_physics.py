"""The physics-check section of ``RESULTS.md`` (``report.py``), from ``results/physics/*.json``."""
from __future__ import annotations


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
    out += au2_slab(physics.get("au2_slab")) + [""]
    out += lode(physics.get("lode")) + [""]
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


def au2_slab(r) -> list[str]:
    if not r or "xtb" not in r:
        why = (r or {}).get("missing", "not run yet")
        return [f"**3. Au2 flat against upright on the doped and undoped slab**: {why}."]
    x, g = r["xtb"], r["geometries"]
    out = ["**3. Au2 flat against upright on the doped and undoped slab** (`results/au2_flat_upright.png`). "
           "Au2 relaxed with GFN1-xTB on the training sets' slab (slab fixed; `physics_slab.py`); "
           "E(flat) − E(upright) in eV:", "",
           "| | undoped | Al-doped | dopant effect |", "|---|---|---|---|",
           f"| GFN1-xTB | {x['dE_undoped_eV']:+.3f} | {x['dE_doped_eV']:+.3f} | {x['dopant_effect_eV']:+.3f} |"]
    for m, v in r["models"].items():
        out.append(f"| {m} | {v['dE_undoped_eV']:+.3f} | {v['dE_doped_eV']:+.3f} | {v['dopant_effect_eV']:+.3f} |")
    out += ["", "Relaxed geometries (Au2 Mulliken charge, e; tilt of the Au–Au axis from the normal):", "",
            "| geometry | Au2 charge | tilt (°) | BFGS steps | converged |", "|---|---|---|---|---|"]
    out += [f"| {k} | {v['au2_mulliken_e']:+.3f} | {v['tilt_deg']:.0f} | {v['bfgs_steps']} | {v['converged']} |"
            for k, v in g.items()]
    lr = [m for m, v in r["models"].items() if v.get("au2_charge_doped_flat_e") is not None]
    if lr:
        out += ["", "Au2 charge of the LR models (e), flat / upright: " + "; ".join(
            f"{m}: undoped {r['models'][m]['au2_charge_undoped_flat_e']:+.3f} / "
            f"{r['models'][m]['au2_charge_undoped_upright_e']:+.3f}, doped {r['models'][m]['au2_charge_doped_flat_e']:+.3f} / "
            f"{r['models'][m]['au2_charge_doped_upright_e']:+.3f}" for m in lr) + "."]
    far = [v["au_al_min_distance_A"] for v in g.values() if v.get("au_al_min_distance_A")]
    if far:
        from matrix import MODELS, receptive_field

        see = [m for m in MODELS if receptive_field(m) > max(far)]
        out += ["", f"The nearest Al is {min(far):.1f}–{max(far):.1f} Å from an Au atom, so on this 4-layer slab the "
                "models whose receptive field is longer (" + (", ".join(see) or "none") + ") can see the dopants "
                "without any long range."]
    effect = abs(x["dopant_effect_eV"])
    t = r.get("dft_transfer", {})
    dft = t.get("reference_dE_eV", {})
    dft_effect = dft["doped"] - dft["undoped"] if dft else None
    same_sign = dft_effect is not None and dft_effect * x["dopant_effect_eV"] > 0
    out += ["", f"Does xTB itself show the dopant effect? The dopants change xTB's ΔE by {x['dopant_effect_eV']:+.3f} eV"
            + (f", against {dft_effect:+.3f} eV in DFT (on other slabs), " + ("the same sign" if same_sign else
               "the opposite sign") if dft_effect is not None else "") + ": "
            + ("small, so in GFN1-xTB (whose Al move little charge onto Au2, see the Mulliken charges) this check "
               "cannot separate short from long range." if effect < 0.2 else "a real effect, which a model must "
               "see across the slab.")]
    t = r.get("dft_transfer", {})
    if t.get("models"):
        out += ["", "Transfer to the four DFT slabs (110 atoms, 3 Al, DFT geometries; the models were trained on "
                f"xTB, so only the signs can be compared): DFT ΔE undoped {t['reference_dE_eV']['undoped']:+.3f}, doped "
                f"{t['reference_dE_eV']['doped']:+.3f} eV; " + "; ".join(
                    f"{m} {v['dE_undoped_eV']:+.3f} / {v['dE_doped_eV']:+.3f}" for m, v in t["models"].items()) + "."]
    return out


def lode(r) -> list[str]:
    if not r or not r.get("models"):
        return ["**4. LODE charged dimers, binding energy against separation**: not run yet (needs the lode models)."]
    out = ["**4. LODE dimers, binding energy against separation** (`results/lode_binding.png`). Every model "
           f"trained on the {r['n_frames']} dimer frames (energies and forces only: no reference charges). Binding "
           "energy E(dimer) − E(A) − E(B), the monomers cut from the same frame; RMSE against the reference (meV), "
           "over all frames and over those whose closest A–B contact is beyond the model's cutoff r_max:", "",
           "| model | r_max (Å) | all frames | beyond the cutoff | of which charged dimers |",
           "|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
    for m, v in r["models"].items():
        out.append(f"| {m} | {v['r_max_A']:g} | {fmt(v['rmse_meV'])} | "
                   f"{fmt(v['rmse_beyond_cutoff_meV'])} ({v['n_beyond']} frames) | "
                   f"{fmt(v['rmse_beyond_charged_meV'])} ({v['n_beyond_charged']}) |")
    moved = {m: v["mean_abs_charge_error_A_charged_e"] for m, v in r["models"].items()
             if v.get("mean_abs_charge_error_A_charged_e") is not None}
    if moved:
        out += ["", "In the charged dimers the LR models' QEq charge on molecule A differs from A's integer charge by, on "
                "average, " + "; ".join(f"{m} {v:.2f} e" for m, v in moved.items()) + " (trained on energies only, "
                "nothing ties a molecule's charge to an integer), while the monomer energies are evaluated at the "
                "integer charge: the offset of the LR binding curves is that mismatch."]
    out += ["", "Once no edge crosses the gap (closest contact beyond r_max) a short-range model's binding energy "
            "is exactly zero, however many layers it has: messages travel along chains of atoms, and there is "
            "none across the gap. The reference tail of a charged pair falls as 1/r. An LR model's tail is the "
            "Coulomb energy of its QEq charges, which include a fractional charge transfer between A and B (QEq "
            "fixes only the total charge), so its error beyond the cutoff mixes the 1/r tail with that known "
            "QEq artefact."]
    return out
