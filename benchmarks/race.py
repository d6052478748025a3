#!/usr/bin/env python
"""Speed race: eqlr_jax against the official PyTorch NequIP, side by side on this machine.

Runs ``benchmarks/bench_sr.py`` (ours) and ``benchmarks/peer_nequip.py`` (the peer, in its
own virtual environment made by ``benchmarks/setup_peer.sh``) alternately, one fresh process
per measurement, on the same structures and hyperparameters (rattled rock-salt NaCl, r_max 5 Å,
32 features with both parities, 4 layers, float32 unless stated). Both processes are pinned to
the same first ``threads`` cores (CPU affinity); the peer also gets ``torch.set_num_threads``.

Writes to --out-dir (default benchmarks/results/race):
  race.jsonl  every raw JSON line (ours and the peer)
  race.json   paired rows and the ratios of the issue targets
  race.md     a Markdown table
  race.png    log-log plot of time against atoms

Two targets compare two of our own calls, and the VM's drift between processes moves them by
up to 2x, so each round of the full matrix also measures them in one process, with the calls
alternating: the per-atom growth (512 -> 4096 atoms) with ``bench_growth.py`` (median of the
per-pair growths) and float64 / float32 at 1000 atoms with ``sweep_edge_block.py``
(``rel_pairs``). The figures from the matrix's separate processes are reported next to them
(``*_separate``). The peer's growth comes from its separate processes.

    python benchmarks/race.py                 # full matrix (about 20 minutes on 2 cores)
    python benchmarks/race.py --quick         # 1000 atoms, l_max 1, one and two threads
    python benchmarks/race.py --quick --rounds 5 --out-dir benchmarks/results/race-quick5
    python benchmarks/race.py --tuned-malloc --out-dir benchmarks/results/history/race-tuned

``--tuned-malloc`` runs *both* codes with ``GLIBC_TUNABLES`` = :data:`TUNED_MALLOC`
(transparent huge pages for malloc, no mmap for large blocks, no trimming): on this VM,
page faults on freshly allocated buffers cost more than the arithmetic, and both XLA and
PyTorch allocate large temporaries on every call.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PEER = os.path.join(HERE, "peer_nequip.py")

# (natoms, lmax, threads, dtype, with_ase)
FULL = [
    (512, 1, 1, "float32", True), (1000, 1, 1, "float32", True), (4096, 1, 1, "float32", True),
    (1000, 1, 2, "float32", True), (1000, 2, 1, "float32", False), (1000, 2, 2, "float32", False),
    (1000, 1, 1, "float64", False), (64, 1, 1, "float32", False),
]
QUICK = [(1000, 1, 1, "float32", True), (1000, 1, 2, "float32", False)]
TUNED_MALLOC = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=100000000000"


def pin(threads):
    cores = sorted(os.sched_getaffinity(0))[:threads]
    return lambda: os.sched_setaffinity(0, set(cores))


def run_json(cmd, threads, env=None):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin(threads), env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def ours_cmd(n, lmax, threads, dtype, ase, iters, warmup):
    cmd = [sys.executable, os.path.join(HERE, "bench_sr.py"), "--natoms", str(n), "--lmax", str(lmax),
           "--threads", str(threads), "--dtype", dtype, "--iters", str(iters), "--warmup", str(warmup)]
    return cmd + ([] if ase else ["--skip-ase"])


def peer_cmd(py, script, n, lmax, threads, dtype, ase, iters, warmup):
    cmd = [py, script, "--system", "nacl", "--natoms", str(n), "--lmax", str(lmax), "--threads", str(threads),
           "--dtype", dtype, "--mode", "eager", "--iters", str(iters), "--warmup", str(warmup)]
    return cmd + ([] if ase else ["--skip-ase"])


def growth_cmd(threads, pairs):
    return [sys.executable, os.path.join(HERE, "bench_growth.py"), "--threads", str(threads), "--pairs", str(pairs)]


def dtype_cmd(threads, rounds):
    return [sys.executable, os.path.join(HERE, "sweep_edge_block.py"), "--natoms", "1000", "--threads", str(threads),
            "--rounds", str(rounds), "float32:auto", "float64:auto"]


def pair_rows(raw):
    """One row per configuration. With several rounds (--rounds), times are medians over rounds
    and ``ratio`` is the median of the per-round ratios (each round runs both codes back to
    back), with ``ratio_min``/``ratio_max``."""
    out = []
    key = lambda r: (r["natoms"], r["lmax"], r["threads"], r["dtype"])  # noqa: E731
    pkey = lambda r: (r["n_atoms"], r["l_max"], r["threads"], r["dtype"])  # noqa: E731
    mine = [r for r in raw if r["code"] == "eqlr_jax" and r.get("kind", "paired") == "paired"]
    for k in sorted({key(r) for r in mine}):
        ours = [r for r in mine if key(r) == k]
        peer = [r for r in raw if r["code"] == "nequip-torch" and pkey(r) == k]
        med = lambda rs, f: None if not rs or rs[0].get(f) is None else round(statistics.median([r[f] for r in rs]), 3)  # noqa: E731
        row = dict(natoms=k[0], lmax=k[1], threads=k[2], dtype=k[3], edges=ours[0]["edges"], rounds=len(ours),
                   ours_ms=med(ours, "model_ms"), ours_ase_ms=med(ours, "ase_ms"),
                   ours_compile_s=med(ours, "compile_s"), ours_rss_mb=max(r["peak_rss_mb"] for r in ours),
                   ours_params=ours[0]["n_params"])
        if peer:
            row.update(peer_ms=med(peer, "model_ms"), peer_ase_ms=med(peer, "ase_ms"),
                       peer_rss_mb=max(r["max_rss_mb"] for r in peer), peer_params=peer[0]["n_params"])
            pairs = [(o, q) for o in ours for q in peer if o.get("round", 0) == q.get("round", 0)]
            ratios = [o["model_ms"] / q["model_ms"] for o, q in pairs]
            row["ratio"] = round(statistics.median(ratios), 3)
            if len(ratios) > 1:
                row["ratio_min"], row["ratio_max"] = round(min(ratios), 3), round(max(ratios), 3)
            ase = [o["ase_ms"] / q["ase_ms"] for o, q in pairs if o.get("ase_ms") and q.get("ase_ms")]
            if ase:
                row["ase_ratio"] = round(statistics.median(ase), 3)
        out.append(row)
    return out


def targets(rows, growth_rows=(), dtype_rows=()):
    """The issue's targets from the paired rows; ``growth_rows``: ``bench_growth.py`` outputs,
    ``dtype_rows``: the float64 lines of ``sweep_edge_block.py`` (when there are any, the growth
    and float64 / float32 targets are the medians of these in-process figures)."""
    def get(n, l, t, d="float32"):
        return next((r for r in rows if (r["natoms"], r["lmax"], r["threads"], r["dtype"]) == (n, l, t, d)), None)

    t = {}
    for l in (1, 2):
        for th in (1, 2):
            r = get(1000, l, th)
            if r and "ratio" in r:
                t[f"ratio_1000_lmax{l}_{th}thread"] = dict(value=r["ratio"], target="<= 0.5", met=r["ratio"] <= 0.5)
    a, b = get(512, 1, 1), get(4096, 1, 1)
    if growth_rows:
        g = statistics.median(r["growth"] for r in growth_rows)
        t["per_atom_growth_512_to_4096"] = dict(value=round(g, 3), target="<= 1.1", met=g <= 1.1)
        t["per_atom_growth_rounds"] = " / ".join(f"{r['growth']:.3f}" for r in growth_rows)
    if a and b:
        g = (b["ours_ms"] / b["natoms"]) / (a["ours_ms"] / a["natoms"])
        if growth_rows:  # the separate-process figure, for reference
            t["per_atom_growth_512_to_4096_separate"] = round(g, 3)
        else:
            t["per_atom_growth_512_to_4096"] = dict(value=round(g, 3), target="<= 1.1", met=g <= 1.1)
        if "peer_ms" in a and "peer_ms" in b:
            t["peer_per_atom_growth_512_to_4096"] = round((b["peer_ms"] / b["natoms"]) / (a["peer_ms"] / a["natoms"]), 3)
        t["rss_4096_lmax1_mb"] = dict(value=b["ours_rss_mb"], target="<= 1536", met=b["ours_rss_mb"] <= 1536)
    r = get(1000, 1, 1)
    if r and "ase_ratio" in r:
        t["ase_ratio_1000"] = dict(value=r["ase_ratio"], target="<= 0.6", met=r["ase_ratio"] <= 0.6)
    if r:
        t["compile_s_1000"] = dict(value=r["ours_compile_s"], target="<= 10", met=r["ours_compile_s"] <= 10)
    r2 = get(1000, 1, 2)
    if r2:
        t["compile_s_1000_2thread"] = dict(value=r2["ours_compile_s"], target="<= 10", met=r2["ours_compile_s"] <= 10)
    if dtype_rows:
        f = statistics.median(d["rel_pairs"] for d in dtype_rows)
        t["f64_over_f32"] = dict(value=round(f, 3), target="<= 2", met=f <= 2)
    r64 = get(1000, 1, 1, "float64")
    if r and r64:
        f = r64["ours_ms"] / r["ours_ms"]
        if dtype_rows:  # the separate-process figure, for reference
            t["f64_over_f32_separate"] = round(f, 3)
        else:
            t["f64_over_f32"] = dict(value=round(f, 3), target="<= 2", met=f <= 2)
    return t


def markdown(rows, tg):
    lines = ["| atoms | edges | l_max | dtype | threads | eqlr_jax ms | NequIP-torch ms | ratio | eqlr_jax ASE ms | "
             "NequIP ASE ms | ASE ratio | RSS MB (ours / peer) |", "|" + "---|" * 12]
    f = lambda x: "–" if x is None else (f"{x:.1f}" if isinstance(x, float) else str(x))  # noqa: E731
    for r in rows:
        lines.append(f"| {r['natoms']} | {r['edges']} | {r['lmax']} | {r['dtype']} | {r['threads']} | {f(r['ours_ms'])} | "
                     f"{f(r.get('peer_ms'))} | {f(r.get('ratio'))} | {f(r.get('ours_ase_ms'))} | {f(r.get('peer_ase_ms'))} | "
                     f"{f(r.get('ase_ratio'))} | {f(r['ours_rss_mb'])} / {f(r.get('peer_rss_mb'))} |")
    lines += ["", "| target | value | goal | met |", "|---|---|---|---|"]
    for k, v in tg.items():
        if isinstance(v, dict):
            lines.append(f"| {k} | {v['value']} | {v['target']} | {'yes' if v['met'] else 'no'} |")
        else:
            lines.append(f"| {k} | {v} | (reference) | |")
    return "\n".join(lines)


def loglog(series, path, ylabel):
    """Save a log-log plot of time against atoms: series = [(label, style, atoms, ms), ...]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, style, x, y in series:
        ax.plot(x, y, style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms (rattled rock-salt NaCl)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot(rows, path):
    series = []
    for l, th in sorted({(r["lmax"], r["threads"]) for r in rows if r["dtype"] == "float32"}):
        sel = sorted([r for r in rows if (r["lmax"], r["threads"], r["dtype"]) == (l, th, "float32")],
                     key=lambda r: r["natoms"])
        series.append((f"eqlr_jax l_max {l}, {th} thr", "o-", [r["natoms"] for r in sel], [r["ours_ms"] for r in sel]))
        pk = [(r["natoms"], r["peer_ms"]) for r in sel if "peer_ms" in r]
        if pk:
            series.append((f"NequIP-torch l_max {l}, {th} thr", "s--", *map(list, zip(*pk))))
    loglog(series, path, "energy + forces, ms (median)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peer-script", default=DEFAULT_PEER, help="path of peer_nequip.py")
    p.add_argument("--peer-python", default=None, help="python of the peer venv (default: make it with setup_peer.sh)")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results", "race"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-peer", action="store_true", help="time eqlr_jax only")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat every configuration (both codes, back to back) this many times; report medians")
    p.add_argument("--growth-pairs", type=int, default=31,
                   help="pairs timed by bench_growth.py and sweep_edge_block.py (float64 against float32) in "
                        "each round of the full matrix (0: skip both)")
    p.add_argument("--tuned-malloc", action="store_true", help="run both codes with GLIBC_TUNABLES=" + TUNED_MALLOC)
    a = p.parse_args()
    env = dict(os.environ, GLIBC_TUNABLES=TUNED_MALLOC) if a.tuned_malloc else None
    configs = QUICK if a.quick else FULL
    py = None
    if not a.no_peer:
        if not os.path.exists(a.peer_script):
            sys.exit(f"peer script not found: {a.peer_script} (pass --peer-script or --no-peer)")
        py = a.peer_python or subprocess.run(["bash", os.path.join(HERE, "setup_peer.sh")], check=True,
                                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
    os.makedirs(a.out_dir, exist_ok=True)
    raw = []
    with open(os.path.join(a.out_dir, "race.jsonl"), "w") as fh:
        def record(row, rnd, kind):
            row["round"], row["kind"] = rnd, kind
            raw.append(row)
            fh.write(json.dumps(row) + "\n")
            fh.flush()

        for idx, (rnd, (n, l, th, dt, ase)) in enumerate((r, c) for r in range(a.rounds) for c in configs):
            # l_max 2 takes seconds per call: fewer repetitions for both codes
            it, wu = (3, 1) if l == 2 else (a.iters, a.warmup)
            jobs = [("ours", ours_cmd(n, l, th, dt, ase, it, wu))]
            if py:
                jobs.append(("peer", peer_cmd(py, a.peer_script, n, l, th, dt, ase, it, wu)))
            if idx % 2:
                jobs.reverse()  # alternate who goes first
            for who, cmd in jobs:
                print(f"[race] round {rnd}, {who}: {n} atoms, l_max {l}, {th} thread(s), {dt}", file=sys.stderr,
                      flush=True)
                row = run_json(cmd, th, env)
                if who == "peer":  # ours already says code="eqlr_jax"
                    row["code"] = "nequip-torch"
                    row["threads"] = th
                record(row, rnd, "paired")
            end_of_round = idx % len(configs) == len(configs) - 1
            if end_of_round and not a.quick and a.growth_pairs:
                print(f"[race] round {rnd}, ours: growth 512 -> 4096 atoms in one process", file=sys.stderr, flush=True)
                record(run_json(growth_cmd(1, a.growth_pairs), 1, env), rnd, "growth")
                print(f"[race] round {rnd}, ours: float64 against float32 in one process", file=sys.stderr, flush=True)
                record(dict(run_json(dtype_cmd(1, a.growth_pairs), 1, env), code="eqlr_jax"), rnd, "dtype")
    rows = pair_rows(raw)
    tg = targets(rows, [r for r in raw if r["kind"] == "growth"],
                 [r for r in raw if r["kind"] == "dtype" and r.get("spec") == "float64:auto"])
    with open(os.path.join(a.out_dir, "race.json"), "w") as fh:
        json.dump(dict(rows=rows, targets=tg, command=" ".join(sys.argv),
                       glibc_tunables=TUNED_MALLOC if a.tuned_malloc else None), fh, indent=1)
    md = markdown(rows, tg)
    with open(os.path.join(a.out_dir, "race.md"), "w") as fh:
        fh.write(md + "\n")
    plot(rows, os.path.join(a.out_dir, "race.png"))
    print(md)


if __name__ == "__main__":
    main()
