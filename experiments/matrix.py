"""The experiments' matrix in one place: datasets, models, the shared budget, and the configs
they make (``experiments/configs/<dataset>_<model>.yaml``, written by ``make_configs.py``).

Every model has two interaction layers and 32 features at l_max 1 (the same network size):
SR NequIP has two layers; NequIP-LR has one in stage 1 (electronegativities, then QEq) and one
in stage 2 (the short-range energy, with the charges as inputs). A model's local receptive
field is 2 × r_max (stage 2 sees stage 1's features); the LR models add the global charge
redistribution.
"""
from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = "experiments/data"  # relative to the repository root, where the runs start

# name: (files, extent of the system (Å, its largest interatomic distance, about), data keys, loss extras)
DATASETS = {
    "carbon_chain": dict(files=["xtb/carbon_chain_C10H2.xyz.gz", "xtb/carbon_chain_C10H3p.xyz.gz"], extent=13.0,
                         what="C10H2 (Q = 0) and C10H3+ (Q = +1), GFN2-xTB MD, 5000 frames"),
    "ag3": dict(files=["xtb/ag3.xyz.gz"], extent=5.5,
                what="Ag3+ and Ag3-, each geometry in both charge states, GFN2-xTB, 4920 frames"),
    "nacl": dict(files=["xtb/nacl_Na9Cl8p.xyz.gz", "xtb/nacl_Na8Cl8p.xyz.gz"], extent=9.0,
                 what="Na9Cl8+ and Na8Cl8+ clusters, GFN2-xTB MD, 5000 frames"),
    "au2_mgo": dict(files=["xtb/au2_mgo.xyz.gz", "xtb/au2_mgo_al.xyz.gz"], extent=None,
                    what="Au2 on MgO(001), undoped and Al-doped, periodic, GFN1-xTB, 1000 frames"),
    "spice": dict(files=["spice-dipeptides/train.xyz.gz"], extent=12.0,
                  keys={"forces_key": "force", "charges_key": "mbi_charges", "dipole_key": "dipole"},
                  loss={"dipole": 1.0}, what="SPICE dipeptides, DFT with MBIS charges and dipoles, 495 frames"),
    # the LODE dimers are for physics check 4 (binding curves); no reference charges
    "lode": dict(files=["lode-dimers/dimers.xyz.gz"], extent=16.0, keys={"charges_key": None}, physics_only=True,
                 what="LODE charged, polar and apolar dimers, 6 pairs x 10 centre separations (4-12 Å), DFT, 60 frames"),
}

# the datasets the claims are judged on (the LODE dimers are too few frames for that)
CLAIM_DATASETS = [d for d, spec in DATASETS.items() if not spec.get("physics_only")]

MODELS = {
    "sr_r5": dict(kind="sr", r_max=5.0, num_layers=2),
    "lr_r5": dict(kind="lr", r_max=5.0, num_layers_charge=1, num_layers=1),
    "lr_r3": dict(kind="lr", r_max=3.0, num_layers_charge=1, num_layers=1),
    "sr_r3": dict(kind="sr", r_max=3.0, num_layers=2),
}

NETWORK = dict(l_max=1, num_features=32)
# The same for every run: at most 200 epochs and at most 5 minutes of training on one CPU core
# (run.py --workers pins each run to a core), with early stopping. The time cap is what makes the
# whole matrix fit in a session; a run stops at whichever limit comes first.
BUDGET = dict(epochs=200, max_minutes=5.0, batch_size=8, early_stopping_patience=40)
OPTIM = dict(optimizer="amsgrad", lr=5e-3, schedule="plateau", plateau_patience=10)
LEARNING_CURVE = dict(datasets=("carbon_chain", "nacl"), models=("sr_r3", "lr_r3"), n_train=(100, 250, 500, 1000))


def receptive_field(model: str) -> float:
    """The local receptive field of a model, Å: interaction layers × r_max."""
    m = MODELS[model]
    return (m.get("num_layers_charge", 0) + m["num_layers"]) * m["r_max"]


def run_name(dataset: str, model: str, n_train: int | None = None) -> str:
    return f"{dataset}_{model}" + (f"_n{n_train}" if n_train else "")


def parse_run_name(name: str) -> tuple[str, str]:
    """(dataset, model) of a main-table run name (``run_name`` without ``n_train``)."""
    dataset = next(d for d in sorted(DATASETS, key=len, reverse=True) if name.startswith(d + "_"))
    return dataset, name[len(dataset) + 1:]


def config(dataset: str, model: str) -> dict:
    """The training config (the YAML's sections) of one cell of the main table."""
    d, m = DATASETS[dataset], dict(MODELS[model])
    data = {"path": [f"{DATA}/{f}" for f in d["files"]], "valid_fraction": 0.1, "test_fraction": 0.1,
            "split_seed": 0, **d.get("keys", {})}
    has_charges = d.get("keys", {}).get("charges_key", "charges") is not None
    loss = {"energy": 1.0, "forces": 1.0, **({"charges": 10.0} if m["kind"] == "lr" and has_charges else {}),
            **d.get("loss", {})}
    if dataset == "au2_mgo":
        loss["stress"] = 0.0
    return {"data": data, "model": {**m, **NETWORK}, "loss": loss, "optim": dict(OPTIM),
            "run": {"out_dir": f"experiments/runs/{run_name(dataset, model)}", **BUDGET, "progress": False}}


def all_runs():
    """(name, dataset, model, n_train) of every run: the main table, then the learning curves."""
    runs = [(run_name(d, m), d, m, None) for d in DATASETS for m in MODELS]
    lc = LEARNING_CURVE
    runs += [(run_name(d, m, n), d, m, n) for d in lc["datasets"] for m in lc["models"] for n in lc["n_train"]]
    return runs
