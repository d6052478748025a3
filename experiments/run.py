#!/usr/bin/env python
"""Run the experiments' training runs in chunks that resume: the main table (every dataset ×
model of ``matrix.py``), then the learning curves.

Each call trains every unfinished run (in order, or those matching ``--only``) for at most
``--chunk-minutes``, resuming from its last checkpoint, and stops starting new chunks after
``--total-minutes``. A run is finished when it reached the epoch budget or the time budget of
``matrix.BUDGET`` (training minutes, all chunks together), or stopped early; then
``experiments/runs/<name>/done.json`` is written. ``--workers 2`` trains two runs at a time,
each pinned to one CPU core with a one-thread XLA, which is how the time budget is meant
(minutes on one core); workers take the next unfinished run as they free up. After every chunk the best model so far is
copied to ``experiments/models/<name>.eqlr`` and its state to
``experiments/results/runs/<name>.json`` (epochs done, finished or not, training time, test
metrics), which ``report.py`` reads. Kill it at any time: at most one epoch is lost.

    python experiments/run.py --list
    python experiments/run.py --only carbon_chain --chunk-minutes 20 --total-minutes 120
    python experiments/run.py --only 'carbon_chain_lr_r3$'
    python experiments/run.py --workers 2 --total-minutes 150
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
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
    # time_s restarts at 0 in each chunk; chunks.json has the row each chunk started at
    starts = sorted(set(_read(os.path.join(out, "chunks.json"), [0]))) if rows else []
    seconds = sum(rows[min(b, len(rows)) - 1]["time_s"] for a, b in zip(starts, starts[1:] + [len(rows)]) if b > a)
    return {"epochs_done": rows[-1]["epoch"] if rows else 0, "finished": os.path.exists(os.path.join(out, "done.json")),
            "train_seconds": round(seconds, 1), "metrics": rows}


def _read(path, default):
    if not os.path.exists(path):
        return default
    with open(path) as fh:
        return json.load(fh)


def budget_left(name) -> float:
    """Minutes of the run's training-time budget not yet used."""
    return BUDGET["max_minutes"] - status(name)["train_seconds"] / 60.0


def run_chunk(name, dataset, model, n_train, minutes: float) -> dict:
    from eqlr_jax.train import load_config, train

    out = os.path.join("experiments", "runs", name)
    st = status(name)
    last_chunk = budget_left(name) <= minutes  # this chunk may use the rest of the time budget
    minutes = min(minutes, budget_left(name))
    over = [f"run.out_dir={out}", f"run.max_minutes={minutes}", "run.progress=false"]
    if n_train:
        over.append(f"data.n_train={n_train}")
    if os.path.exists(os.path.join(ROOT, out, "config.json")):  # a run started before (maybe no epoch done)
        over.append("run.resume=true")
        chunks = os.path.join(ROOT, out, "chunks.json")
        with open(chunks, "w") as fh:
            json.dump(_read(chunks, [0]) + [len(st["metrics"])], fh)
    cfg = load_config(None, over, base=config(dataset, model))
    lines = []

    def log(*a):
        lines.append(" ".join(map(str, a)))
        print(f"[{name}]", *a, flush=True)

    run = train(cfg, log=log)
    timed_out = any(line.startswith("stopped after") for line in lines)
    if not timed_out or last_chunk:
        early = any(line.startswith("early stop") for line in lines)
        with open(os.path.join(ROOT, out, "done.json"), "w") as fh:
            json.dump({"epochs": run.metrics[-1]["epoch"] if run.metrics else None, "early_stop": early,
                       "stopped_by": "early stop" if early else "time" if timed_out else "epochs"}, fh)
    return collect(name, dataset, model, n_train)


def collect(name, dataset, model, n_train) -> dict:
    """Copy the best model and write the run's summary for report.py."""
    out = os.path.join(ROOT, "experiments", "runs", name)
    st = status(name)
    summary = {"name": name, "dataset": dataset, "model": model, "n_train": n_train,
               "receptive_field_A": receptive_field(model), "epoch_budget": BUDGET["epochs"],
               **{k: st[k] for k in ("epochs_done", "finished", "train_seconds")},
               "valid": [{k: r[k] for k in r if k.startswith("valid_") or k == "epoch"} for r in st["metrics"]]}
    for f, key in (("done.json", "stopped_by"), ("split.json", "n_train_frames")):
        if os.path.exists(os.path.join(out, f)):
            with open(os.path.join(out, f)) as fh:
                v = json.load(fh)
            if key == "n_train_frames":
                summary[key] = len(v["train"])
            else:  # done.json of older calls has no stopped_by
                summary[key] = v.get("stopped_by") or ("early stop" if v["early_stop"] else
                                                       "epochs" if (v["epochs"] or 0) >= BUDGET["epochs"] else "time")
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
    p.add_argument("--collect", action="store_true", help="rewrite the summaries of the runs on disk, train nothing")
    p.add_argument("--workers", type=int, default=1, help="runs at a time, each pinned to one CPU core")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # set by --workers
    args = p.parse_args(argv)
    os.chdir(ROOT)  # the configs' paths are relative to the repository root
    runs = [r for r in all_runs() if args.only is None or re.search(args.only, r[0])]
    if args.collect:
        for r in runs:
            if os.path.exists(os.path.join(ROOT, "experiments", "runs", r[0], "metrics.jsonl")):
                collect(*r)
        return 0
    if args.workers > 1 and args.worker is None and not args.list:
        return _spawn(args, argv if argv is not None else sys.argv[1:])
    if args.worker is not None:
        _pin(args.worker)
    if args.list:
        for name, *_ in runs:
            st = status(name)
            print(f"{name:32s} {st['epochs_done']:4d}/{BUDGET['epochs']} epochs  "
                  f"{'finished' if st['finished'] else 'unfinished':10s} {st['train_seconds'] / 60:7.1f} min")
        return 0
    t0 = time.perf_counter()
    for name, dataset, model, n_train in runs:
        if args.worker is not None and not _claim(name):
            continue
        out = os.path.join(ROOT, "experiments", "runs", name)
        st = status(name)
        done = _read(os.path.join(out, "done.json"), {})
        if st["finished"] and done.get("stopped_by") == "time" and budget_left(name) > 0.05:
            os.remove(os.path.join(out, "done.json"))  # the time budget was raised: train on
            st["finished"] = False
        if (not st["finished"] and st["epochs_done"] and budget_left(name) < 0.05
                and os.path.exists(os.path.join(out, "test_metrics.json"))):  # spent, to the last epoch's end
            with open(os.path.join(out, "done.json"), "w") as fh:
                json.dump({"epochs": st["epochs_done"], "early_stop": False, "stopped_by": "time"}, fh)
            collect(name, dataset, model, n_train)
            continue
        if st["finished"]:
            continue
        left = args.total_minutes - (time.perf_counter() - t0) / 60.0
        if left <= 0:
            print("total time used up; run again to continue")
            break
        s = run_chunk(name, dataset, model, n_train, min(args.chunk_minutes, left))
        print(f"[{name}] {s['epochs_done']} epochs, {'finished' if s['finished'] else 'unfinished'}", flush=True)
    return 0


def _locks() -> str:
    return os.path.join(ROOT, "experiments", "runs", ".claims")


def _claim(name) -> bool:
    """Take a run for this worker; False if another worker has it."""
    try:
        os.close(os.open(os.path.join(_locks(), name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _pin(worker: int):
    """One core for this worker, and XLA's Eigen thread pool off (before JAX is imported)."""
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[worker % len(cores)]})
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def _spawn(args, argv) -> int:
    """Start ``--workers`` copies of this script, each on its own core, sharing the run list."""
    shutil.rmtree(_locks(), ignore_errors=True)  # claims of an earlier, stopped call
    os.makedirs(_locks())
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--worker", str(k)])
             for k in range(args.workers)]
    try:
        codes = [p.wait() for p in procs]
        return next((c for c in codes if c), 0)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise


if __name__ == "__main__":
    sys.exit(main())
