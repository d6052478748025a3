#!/usr/bin/env python
"""GPU speed race: eqlr_jax against the PyTorch NequIP (eager) on the same CUDA GPU.

Runs ``benchmarks/bench_sr.py`` (ours, JAX on the GPU) and ``benchmarks/peer_gpu.py`` (the
peer, PyTorch on the GPU) alternately, one fresh process per measurement, on rattled rock-salt
NaCl at about 1,000 and 10,000 atoms (k = 5 and 11: 1000 and 10648 atoms), l_max 1 and 2,
float32 with full-precision matmuls for both (JAX ``highest``, NequIP ``allow_tf32=False``),
and float64 at 1000 atoms, l_max 1. Both processes need one Python with jax[cuda], torch (CUDA)
and nequip 0.19.1.

Writes to --out-dir: ``gpu_race.jsonl`` (every raw row, written as it comes), ``gpu_race.md``
(table) and ``gpu_race.png`` (log-log time against atoms). ``--budget-s`` stops launching new
measurements once that much wall time is spent, so a run on a leased machine ends in time::

    python benchmarks/gpu_race.py --out-dir benchmarks/results/gpu --budget-s 400
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



def configs(small, large):
    """(natoms, lmax, dtype, with_ase), most important first."""
    return [(small, 1, "float32", True), (large, 1, "float32", True), (small, 2, "float32", False),
            (large, 2, "float32", False), (small, 1, "float64", False)]


def commands(py, n, lmax, dtype, ase, iters, warmup, device="cuda"):
    ours = [py, os.path.join(HERE, "bench_sr.py"), "--natoms", str(n), "--lmax", str(lmax), "--dtype", dtype,
            "--iters", str(iters), "--warmup", str(warmup), "--matmul-precision", "highest"]
    peer = [py, os.path.join(HERE, "peer_gpu.py"), "--natoms", str(n), "--lmax", str(lmax), "--dtype", dtype,
            "--iters", str(iters), "--warmup", str(warmup), "--device", device]
    extra = [] if ase else ["--skip-ase"]
    return [("eqlr_jax", ours + extra), ("nequip-torch", peer + extra)]


def run_json(cmd, timeout):
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout:.0f} s")
    if proc.returncode != 0:
        return dict(error=f"exit {proc.returncode}", stderr=proc.stderr[-2000:])
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def table(raw):
    f = lambda x: "–" if x is None else (f"{x:.1f}" if isinstance(x, float) else str(x))  # noqa: E731
    lines = ["| atoms | edges | l_max | dtype | eqlr_jax ms | NequIP-torch ms | ratio | eqlr_jax ASE ms | NequIP ASE ms "
             "| GPU peak MB (ours / peer) | our compile s |", "|" + "---|" * 11]
    keys = sorted({(r["natoms"], r["lmax"], r["dtype"]) for r in raw if "natoms" in r}, key=lambda k: (k[2], k[1], k[0]))
    rows = []
    for k in keys:
        o, q = ({r["code"]: r for r in raw if "natoms" in r and (r["natoms"], r["lmax"], r["dtype"]) == k}.get(c, {})
                for c in ("eqlr_jax", "nequip-torch"))
        ratio = round(o["model_ms"] / q["model_ms"], 3) if o and q else None
        rows.append(dict(natoms=k[0], lmax=k[1], dtype=k[2], ours_ms=o.get("model_ms"), peer_ms=q.get("model_ms"),
                         ratio=ratio, ours_ase_ms=o.get("ase_ms"), peer_ase_ms=q.get("ase_ms")))
        lines.append(f"| {k[0]} | {f((o or q).get('edges'))} | {k[1]} | {k[2]} | {f(o.get('model_ms'))} | "
                     f"{f(q.get('model_ms'))} | {'–' if ratio is None else f'{ratio:.3f}'} | {f(o.get('ase_ms'))} | {f(q.get('ase_ms'))} | "
                     f"{f(o.get('gpu_peak_mb'))} / {f(q.get('gpu_peak_mb'))} | {f(o.get('compile_s'))} |")
    dev = next((r.get("device") for r in raw if r.get("code") == "nequip-torch" and r.get("device")), None)
    lines.append("")
    lines.append(f"Device: {dev}. Median of the timed calls; float32 at full matmul precision (no TF32) for both.")
    return rows, "\n".join(lines)


def plot(rows, path):
    from race import loglog

    series = []
    for l in sorted({r["lmax"] for r in rows}):
        sel = sorted([r for r in rows if r["lmax"] == l and r["dtype"] == "float32"], key=lambda r: r["natoms"])
        for key, style, name in (("ours_ms", "o-", "eqlr_jax"), ("peer_ms", "s--", "NequIP-torch")):
            pts = [(r["natoms"], r[key]) for r in sel if r[key]]
            if len(pts) > 1:
                series.append((f"{name} l_max {l}", style, *map(list, zip(*pts))))
    loglog(series, path, "energy + forces on the GPU, ms (median)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", default=os.path.join(HERE, "results", "gpu"))
    p.add_argument("--python", default=sys.executable, help="python with jax[cuda], torch and nequip")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=1e9, help="launch no new measurement after this many seconds")
    p.add_argument("--job-timeout-s", type=float, default=180)
    p.add_argument("--peer-device", default="cuda", help="torch device of the peer ('cpu' to try the script)")
    p.add_argument("--sizes", type=int, nargs=2, default=(1000, 10000), help="target atom counts (small, large)")
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    start = time.perf_counter()
    raw = []
    with open(os.path.join(a.out_dir, "gpu_race.jsonl"), "w") as fh:
        for i, (n, l, dt, ase) in enumerate(configs(*a.sizes)):
            jobs = commands(a.python, n, l, dt, ase, a.iters, a.warmup, a.peer_device)
            if i % 2:
                jobs.reverse()  # alternate who goes first
            for who, cmd in jobs:
                left = a.budget_s - (time.perf_counter() - start)
                if left < 20:
                    print(f"[gpu-race] budget spent; skipping {who} {n} l_max {l} {dt}", file=sys.stderr, flush=True)
                    continue
                print(f"[gpu-race] {time.perf_counter() - start:6.0f} s  {who}: ~{n} atoms, l_max {l}, {dt}",
                      file=sys.stderr, flush=True)
                row = run_json(cmd, min(a.job_timeout_s, left))
                row.setdefault("code", who)
                if "error" in row:
                    row.update(natoms_target=n, lmax_target=l, dtype_target=dt)
                    print(f"[gpu-race]   failed: {row['error']}\n{row.get('stderr', '')}", file=sys.stderr, flush=True)
                else:
                    print(f"[gpu-race]   {row['model_ms']} ms", file=sys.stderr, flush=True)
                raw.append(row)
                fh.write(json.dumps(row) + "\n")
                fh.flush()
    rows, md = table(raw)
    with open(os.path.join(a.out_dir, "gpu_race.md"), "w") as fh:
        fh.write(md + "\n")
    try:
        plot(rows, os.path.join(a.out_dir, "gpu_race.png"))
    except Exception as e:  # the plot must not lose the table
        print(f"[gpu-race] plot failed: {e}", file=sys.stderr)
    print(md)
    ok = [r for r in rows if r["ratio"] is not None]
    if ok:
        print("median ratio:", round(statistics.median(r["ratio"] for r in ok), 3))


if __name__ == "__main__":
    main()
