#!/usr/bin/env python
"""Run the experiments' training runs in chunks that resume: the main table (every dataset ×
model of ``matrix.py``), then the learning curves.

Each call trains every unfinished run (in order, or those matching ``--only``) for at most
``--chunk-minutes``, resuming from its last checkpoint, and stops starting new chunks after
``--total-minutes``. A run is finished when it reached the epoch budget or stopped early; then
``experiments/runs/<name>/done.json`` is written. After every chunk the best model so far is
copied to ``experiments/models/<name>.eqlr`` and its state to
``experiments/results/runs/<name>.json`` (epochs done, finished or not, training time, test
metrics), which ``report.py`` reads. Kill it at any time: at most one epoch is lost.

    python experiments/run.py --list
    python experiments/run.py --only carbon_chain --chunk-minutes 20 --total-minutes 120
    python experiments/run.py --only 'carbon_chain_lr_r3$'
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matrix import BUDGET, HERE, ROOT, all_runs, config, receptive_field  # noqa: E402


def status(name: str) -> dict:
    """What is on disk of a run: epochs done, finished, training seconds (all chunks)."""
    out = os.path.join(ROOT, "experiments", "runs", name)
    rows = []
    path = os.path.join(out, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    seconds, last = 0.0, 0.0
    for r in rows:  # time_s restarts at 0 in each chunk
        seconds += r["time_s"] - last if r["time_s"] >= last else r["time_s"]
        last = r["time_s"]
    return {"epochs_done": rows[-1]["epoch"] if rows else 0, "finished": os.path.exists(os.path.join(out, "done.json")),
            "train_seconds": round(seconds, 1), "metrics": rows}


def run_chunk(name, dataset, model, n_train, minutes: float) -> dict:
    from eqlr_jax.train import load_config, train

    out = os.path.join("experiments", "runs", name)
    st = status(name)
    over = [f"run.out_dir={out}", f"run.max_minutes={minutes}", "run.progress=false"]
    if n_train:
        over.append(f"data.n_train={n_train}")
    if st["epochs_done"] > 0:
        over.append("run.resume=true")
    cfg = load_config(None, over, base=config(dataset, model))
    lines = []

    def log(*a):
        lines.append(" ".join(map(str, a)))
        print(f"[{name}]", *a, flush=True)

    run = train(cfg, log=log)
    timed_out = any(line.startswith("stopped after") for line in lines)
    if not timed_out:
        with open(os.path.join(ROOT, out, "done.json"), "w") as fh:
            json.dump({"epochs": run.metrics[-1]["epoch"] if run.metrics else None,
                       "early_stop": any(line.startswith("early stop") for line in lines)}, fh)
    return collect(name, dataset, model, n_train)


def collect(name, dataset, model, n_train) -> dict:
    """Copy the best model and write the run's summary for report.py."""
    out = os.path.join(ROOT, "experiments", "runs", name)
    st = status(name)
    summary = {"name": name, "dataset": dataset, "model": model, "n_train": n_train,
               "receptive_field_A": receptive_field(model), "epoch_budget": BUDGET["epochs"],
               **{k: st[k] for k in ("epochs_done", "finished", "train_seconds")},
               "valid": [{k: r[k] for k in r if k.startswith("valid_") or k == "epoch"} for r in st["metrics"]]}
    test = os.path.join(out, "test_metrics.json")
    if os.path.exists(test):
        with open(test) as fh:
            summary["test"] = json.load(fh)
    best = os.path.join(out, "best.eqlr")
    if os.path.exists(best) and n_train is None:
        os.makedirs(os.path.join(HERE, "models"), exist_ok=True)
        shutil.copyfile(best, os.path.join(HERE, "models", f"{name}.eqlr"))
    os.makedirs(os.path.join(HERE, "results", "runs"), exist_ok=True)
    with open(os.path.join(HERE, "results", "runs", f"{name}.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=None, help="a regular expression on the run names")
    p.add_argument("--chunk-minutes", type=float, default=20.0)
    p.add_argument("--total-minutes", type=float, default=float("inf"))
    p.add_argument("--list", action="store_true", help="list the runs and their state, run nothing")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # the configs' paths are relative to the repository root
    runs = [r for r in all_runs() if args.only is None or re.search(args.only, r[0])]
    if args.list:
        for name, *_ in runs:
            st = status(name)
            print(f"{name:32s} {st['epochs_done']:4d}/{BUDGET['epochs']} epochs  "
                  f"{'finished' if st['finished'] else 'unfinished':10s} {st['train_seconds'] / 60:7.1f} min")
        return 0
    t0 = time.perf_counter()
    for name, dataset, model, n_train in runs:
        if status(name)["finished"]:
            continue
        left = args.total_minutes - (time.perf_counter() - t0) / 60.0
        if left <= 0:
            print("total time used up; run again to continue")
            break
        s = run_chunk(name, dataset, model, n_train, min(args.chunk_minutes, left))
        print(f"[{name}] {s['epochs_done']} epochs, {'finished' if s['finished'] else 'unfinished'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
