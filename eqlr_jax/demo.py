"""The main job: train a short-range and a long-range model on the bundled carbon chains and
compare them.

The data (``eqlr_jax/data/carbon_chain.xyz.gz``, written by
``experiments/datasets/bundle_demo_data.py``) are 314 GFN2-xTB frames of the neutral C10H2 and
the protonated C10H3+ chain (Mulliken charges). Both models have the same cutoff (3 Å) and the
same number of interaction layers (SR: 2; LR: 1 in stage 1 + 1 in stage 2), so both see 6 Å
around an atom, less than the 13 Å chain: what the LR model gains beyond that, it gains from
charge equilibration with the total charge as input.
"""
from __future__ import annotations

import json
import os
import warnings
from importlib import resources

import numpy as np

__all__ = ["data_path", "run_demo"]


def data_path() -> str:
    """Path of the bundled carbon-chain data set (extxyz, gzip)."""
    return str(resources.files("eqlr_jax") / "data" / "carbon_chain.xyz.gz")


def _config(kind: str, out_dir: str, minutes: float, features: int, seed: int, extra=()):
    from .train import load_config

    model = ["model.r_max=3.0", f"model.num_features={features}", "model.l_max=1"]
    if kind == "sr":
        model += ["model.kind=sr", "model.num_layers=2"]
    else:
        model += ["model.kind=lr", "model.num_layers_charge=1", "model.num_layers=1", "model.charge_basis=8",
                  "loss.charges=10.0"]
    return load_config(None, [f"data.path={data_path()}", f"run.out_dir={out_dir}/{kind}", "run.overwrite=true",
                              f"run.max_minutes={minutes}", "run.epochs=100000", "run.batch_size=8",
                              f"run.seed={seed}", "run.checkpoint_every=20", "run.early_stopping_patience=100",
                              "optim.lr=0.01", "optim.plateau_patience=10", "run.capacity_levels=2",
                              *model, *extra])


def _charges_plot(frames, lr_pot, path):
    """Reference and LR-predicted charges along the chain (x of each atom) for one neutral and one
    protonated test frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .graph import build_graph
    from .models import long_range_spec

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, want in zip(axes, (0.0, 1.0)):
        frame = next((f for f in frames if f.structure.total_charge == want), None)
        if frame is None:
            continue
        s = frame.structure
        g, _ = build_graph(s, lr_pot.cutoff, lr_pot.species, long_range=long_range_spec(lr_pot.config))
        q = np.asarray(lr_pot(g, compute_stress=False)["charges"][:s.n_atoms])
        x = s.positions @ _chain_axis(s.positions)
        x -= x.min()
        order = np.argsort(x)
        ax.plot(x[order], frame.charges[order], "o-", label="reference (GFN2-xTB Mulliken)")
        ax.plot(x[order], q[order], "s--", label="LR model")
        ax.set_title(f"{'C10H2, Q = 0' if want == 0 else 'C10H3+, Q = +1'}")
        ax.set_xlabel("position along the chain (Å)")
        ax.axhline(0, color="0.8", lw=0.8)
    axes[0].set_ylabel("charge (e)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def far_h_charges(frames, lr_pot) -> dict:
    """Mean predicted and reference charge (e) of the far H, the H atom farthest from all other
    H atoms (in C10H3+ the lone H at the unprotonated end), for the neutral and the charged frames."""
    from .graph import build_graph
    from .models import long_range_spec

    out = {}
    for want, name in ((0.0, "neutral"), (1.0, "protonated")):
        pred, ref = [], []
        for f in frames:
            s = f.structure
            if s.total_charge != want or f.charges is None:
                continue
            hs = np.flatnonzero(s.numbers == 1)
            d = np.linalg.norm(s.positions[hs][:, None] - s.positions[hs][None], axis=-1) + 1e9 * np.eye(len(hs))
            far = hs[np.argmax(d.min(axis=1))]
            g, _ = build_graph(s, lr_pot.cutoff, lr_pot.species, long_range=long_range_spec(lr_pot.config))
            pred.append(float(lr_pot(g, compute_stress=False)["charges"][far]))
            ref.append(float(f.charges[far]))
        if pred:
            out[name] = (float(np.mean(pred)), float(np.mean(ref)), len(pred))
    return out


def _chain_axis(pos):
    centred = pos - pos.mean(axis=0)
    return np.linalg.svd(centred, full_matrices=False)[2][0]


def run_demo(out_dir: str = "demo-run", minutes: float = 2.5, features: int = 16, seed: int = 0,
             extra=(), log=print) -> dict:
    """Train SR and LR for ``minutes`` each, print the test errors side by side, write plots.

    Returns ``{"sr": metrics, "lr": metrics}`` (test split; meV/atom, meV/Å, me).
    """
    from .train import train
    from .train.evaluate import metrics, parity_plot, predictions
    from .train.trainer import prepare

    os.makedirs(out_dir, exist_ok=True)
    results, pots = {}, {}
    for kind in ("sr", "lr"):
        cfg = _config(kind, out_dir, minutes, features, seed, extra)
        log(f"training the {kind.upper()} model for up to {minutes:g} min ...")
        run = train(cfg, log=log)
        frames, splits = prepare(cfg)
        test = [frames[i] for i in splits["test"]]
        with warnings.catch_warnings():  # the SR model ignores the total charge: that is the comparison
            warnings.simplefilter("ignore", UserWarning)
            pairs = predictions(run.potential, test)
        results[kind], pots[kind] = metrics(pairs), run.potential
        results[kind]["epochs"] = len(run.metrics)
        parity_plot(pairs, os.path.join(out_dir, f"parity_{kind}.png"), f"{kind.upper()} model, test split")
    _charges_plot(test, pots["lr"], os.path.join(out_dir, "charges_along_chain.png"))
    rows = [("energy", "meV/atom"), ("forces", "meV/Å"), ("charges", "me")]
    log(f"\ntest errors ({len(test)} frames), RMSE / MAE:")
    log(f"{'':10s} {'SR (2 layers, 3 Å)':>24s} {'LR (1 + 1 layers, 3 Å)':>26s}")
    for name, unit in rows:
        cell = lambda k: (f"{results[k][name]['rmse']:8.2f} / {results[k][name]['mae']:7.2f}"  # noqa: E731
                          if name in results[k] else f"{'–':>18s}")
        log(f"{name:10s} {cell('sr'):>24s} {cell('lr'):>26s}   {unit}")
    log(f"epochs: SR {results['sr']['epochs']}, LR {results['lr']['epochs']}")
    far = far_h_charges(test, pots["lr"])
    results["far_h"] = far
    for name, (p, r, n) in far.items():
        log(f"far-end H charge, {name} chain ({n} test frames): LR {p:+.3f} e, reference {r:+.3f} e")
    better = [n for n, _ in rows[:2] if results["lr"][n]["rmse"] < results["sr"][n]["rmse"]]
    if len(better) == 2:
        log("The LR model is more accurate than the SR model on both energies and forces.")
    elif better:
        log(f"The LR model is more accurate on {better[0]} only, within this training budget.")
    else:
        log("Within this training budget the LR model did NOT beat the SR model; train longer "
            "(eqlr-jax demo --minutes 10) or see experiments/.")
    with open(os.path.join(out_dir, "summary.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    log(f"plots: {out_dir}/parity_sr.png, parity_lr.png, charges_along_chain.png; models: {out_dir}/sr/best.eqlr, "
        f"{out_dir}/lr/best.eqlr; numbers: {out_dir}/summary.json")
    return results
