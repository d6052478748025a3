#!/usr/bin/env python
"""Training-step race: eqlr_jax's training step against NequIP 0.19's own, side by side.

One training step = energy + force loss (per-atom energy MSE + force MSE, weights 0.5 and 0.5
as NequIP normalises its 1 and 1), backward, Adam update (lr 1e-3, no clipping, no EMA), on one
batch of B rattled NaCl cells (``peer_train_step.train_structures``: 4 × 64 atoms by default).
Same model size as the inference race: r_max 5 Å, l_max 1, 32 features with both parities,
4 layers, 8 Bessel functions, radial MLP 2 × 64, float32.

* ours: ``LRConfig(long_range=False, num_layers=4)``, the batch from
  ``eqlr_jax.train.batches.BatchMaker`` (one capacity), ``Steps(...).train`` with
  ``make_optimizer("adam", None)`` (jitted, state donated); ``--worker ours`` runs it;
* the peer: ``peer_train_step.py`` in the peer's venv (``setup_peer.sh``):
  ``NequIPLightningModule.training_step`` + ``backward`` + ``torch.optim.Adam.step``;
  ``--lightning`` also times a real ``lightning.Trainer`` as a third, reference column.

Both run alternately (who goes first alternates), one fresh process per measurement, pinned
to the same first ``threads`` cores. The peer runs with ``OMP_WAIT_POLICY=PASSIVE`` unless
``--peer-omp-default``: on this shared 2-core VM, under load from other processes, PyTorch's
OpenMP threads spin at every barrier and its 2-thread step took about 3 s instead of about 1 s
(``results/history/train_race_omp_default.jsonl``); at one thread it makes no difference.
One JSON line per measurement and a summary line per
thread count (median ms of each, the median of the per-round ratios ours / peer), printed
and written to --out:

    python benchmarks/race_train.py --rounds 3 --threads 1 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from race import run_json  # noqa: E402


def ours(args) -> dict:
    """Time our training step in this process (pinned to ``args.threads`` cores)."""
    from bench_sr import pin_cores

    pin_cores(args.threads)
    import jax
    import jax.numpy as jnp
    import numpy as np
    from peer_train_step import median_ms, train_structures

    import eqlr_jax
    from eqlr_jax.models import LRConfig, init_params
    from eqlr_jax.train import Frame, LossWeights
    from eqlr_jax.train.batches import BatchMaker
    from eqlr_jax.train.steps import Steps, make_optimizer

    dtype = np.dtype("float32")
    frames = [Frame(eqlr_jax.Structure.from_ase(a), a.get_potential_energy(), a.get_forces())
              for a in train_structures(args.batch, args.natoms)]
    cfg = LRConfig(species=("Na", "Cl"), r_max=5.0, l_max=1, num_features=32, parity=True, long_range=False,
                   num_layers=4)
    maker = BatchMaker(frames, cfg.r_max, cfg.species, None, args.batch, dtype, levels=1)
    graph, targets = maker.make(np.arange(len(frames)))
    steps = Steps(cfg, LossWeights(energy=0.5, forces=0.5), make_optimizer("adam", None), 0.0)
    params = init_params(cfg, 0, dtype)
    state = steps.init_state(params)
    lr = jnp.asarray(args.lr, dtype)
    losses = []

    def step():
        nonlocal state
        state, loss, _ = steps.train(state, graph, targets, lr)
        jax.block_until_ready((state, loss))
        losses.append(float(loss))

    t0 = time.perf_counter()
    step()
    first_s = time.perf_counter() - t0
    med, cpu, wall = median_ms(step, max(args.warmup - 1, 0), args.iters)
    edges = int(np.sum(np.asarray(graph.edge_mask)))
    return dict(code="eqlr_jax", natoms=args.natoms, batch=args.batch, n_atoms=sum(f.n_atoms for f in frames),
                edges=edges, capacity_nodes=graph.n_node_capacity, capacity_edges=graph.n_edge_capacity, lmax=1,
                dtype="float32", n_params=int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params))),
                threads=len(os.sched_getaffinity(0)), warmup=args.warmup, iters=args.iters,
                first_step_s=round(first_s, 3), compiles=steps.compiles["train"], step_ms=round(med, 3),
                step_ms_min=round(min(wall), 3), step_cpu_ms=round(cpu, 3), step_ms_all=[round(t, 2) for t in wall],
                loss_first=losses[0], loss_last=losses[-1], loadavg_1min=round(os.getloadavg()[0], 2))


def commands(args, py, threads):
    common = ["--natoms", str(args.natoms), "--batch", str(args.batch), "--threads", str(threads),
              "--warmup", str(args.warmup), "--iters", str(args.iters)]
    jobs = [("ours", [sys.executable, os.path.abspath(__file__), "--worker", "ours"] + common),
            ("peer", [py, os.path.join(HERE, "peer_train_step.py")] + common)]
    if args.lightning:
        jobs.append(("peer-lightning", [py, os.path.join(HERE, "peer_train_step.py"), "--lightning"] + common))
    return jobs


def summary(rows, threads):
    sel = lambda who: [r for r in rows if r["who"] == who and r["threads"] == threads]  # noqa: E731
    mine, peer, light = sel("ours"), sel("peer"), sel("peer-lightning")
    med = lambda rs: round(statistics.median(r["step_ms"] for r in rs), 3) if rs else None  # noqa: E731
    by_round = {r["round"]: r for r in peer}
    ratios = [o["step_ms"] / by_round[o["round"]]["step_ms"] for o in mine if o["round"] in by_round]
    out = dict(kind="summary", threads=threads, rounds=len(mine), natoms=mine[0]["natoms"], batch=mine[0]["batch"],
               edges=mine[0]["edges"], ours_ms=med(mine), peer_ms=med(peer),
               ratio=round(statistics.median(ratios), 3) if ratios else None,
               ratio_min=round(min(ratios), 3) if ratios else None, ratio_max=round(max(ratios), 3) if ratios else None,
               ratio_of_medians=round(med(mine) / med(peer), 3) if peer else None,
               ours_first_step_s=round(statistics.median(r["first_step_s"] for r in mine), 2),
               ours_params=mine[0]["n_params"], peer_params=peer[0]["n_params"] if peer else None,
               peer_omp_wait_policy=peer[0].get("omp_wait_policy") if peer else None)
    cpu = lambda rs: round(statistics.median(r["step_cpu_ms"] for r in rs), 3) if rs else None  # noqa: E731
    out.update(ours_cpu_ms=cpu(mine), peer_cpu_ms=cpu(peer))
    if peer:
        cpu_ratios = [o["step_cpu_ms"] / by_round[o["round"]]["step_cpu_ms"] for o in mine if o["round"] in by_round]
        out["cpu_ratio"] = round(statistics.median(cpu_ratios), 3)
    if light:
        out["peer_lightning_ms"], out["peer_lightning_cpu_ms"] = med(light), cpu(light)
        by_round_l = {r["round"]: r for r in light}
        out["ratio_vs_lightning"] = round(statistics.median(
            o["step_ms"] / by_round_l[o["round"]]["step_ms"] for o in mine if o["round"] in by_round_l), 3)
        out["cpu_ratio_vs_lightning"] = round(statistics.median(
            o["step_cpu_ms"] / by_round_l[o["round"]]["step_cpu_ms"] for o in mine if o["round"] in by_round_l), 3)
    if out["ratio"] is not None:
        out["target"], out["met"] = "<= 0.5", out["ratio"] <= 0.5
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", choices=["ours"], help=argparse.SUPPRESS)
    p.add_argument("--natoms", type=int, default=64, help="atoms per NaCl cell")
    p.add_argument("--batch", type=int, default=4, help="structures per batch")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (cores pinned)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lightning", action="store_true", help="also time the peer under lightning.Trainer")
    p.add_argument("--peer-omp-default", action="store_true",
                   help="run the peer with OpenMP's default wait policy instead of OMP_WAIT_POLICY=PASSIVE")
    p.add_argument("--peer-python", default=None, help="python of the peer venv (default: setup_peer.sh's)")
    p.add_argument("--resummarize", metavar="JSONL", help="recompute the summary lines of an earlier run's output")
    p.add_argument("--out", default=os.path.join(HERE, "results", "train_race.jsonl"))
    a = p.parse_args()
    if a.worker == "ours":
        a.threads = a.threads[0]
        sys.stdout.write(json.dumps(ours(a)) + "\n")
        return
    if a.resummarize:  # new summary lines for the measurements of an earlier run
        rows = [json.loads(line) for line in open(a.resummarize)]
        command = next((r["command"] for r in rows if r.get("kind") == "summary"), None)
        rows = [r for r in rows if r.get("kind") != "summary"]
        with open(a.out, "w") as fh:
            for row in rows + [dict(summary(rows, th), command=command)
                               for th in sorted({r["threads"] for r in rows})]:
                print(json.dumps(row))
                fh.write(json.dumps(row) + "\n")
        return
    py = a.peer_python or subprocess.run(["bash", os.path.join(HERE, "setup_peer.sh")], check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    peer_env = None if a.peer_omp_default else dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    rows = []
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as fh:
        def emit(row):
            line = json.dumps(row)
            print(line, flush=True)
            fh.write(line + "\n")
            fh.flush()

        idx = 0
        for rnd in range(a.rounds):
            for th in a.threads:
                jobs = commands(a, py, th)
                if idx % 2:
                    jobs.reverse()  # alternate who goes first
                idx += 1
                for who, cmd in jobs:
                    print(f"[race_train] round {rnd}, {who}, {th} thread(s)", file=sys.stderr, flush=True)
                    env = None if who == "ours" else peer_env
                    row = run_json(cmd, th, env)
                    row.update(who=who, round=rnd, threads=th)
                    if who != "ours":
                        row["omp_wait_policy"] = "default" if env is None else "PASSIVE"
                    rows.append(row)
                    emit(row)
        for th in a.threads:
            emit(dict(summary(rows, th), command=" ".join(["python", "benchmarks/race_train.py"] + sys.argv[1:])))


if __name__ == "__main__":
    main()
