#!/usr/bin/env python
"""The race's E+F+stress call, this working tree against another git revision, in one process.

On a shared VM, run times move by up to 30 % between processes, so a change is measured here
in one process: the other revision's ``eqlr_jax`` is extracted (``git archive``) and imported
as ``eqlr_jax_rev``; both calls are compiled ahead of time (``bench_sr.compile_call``'s call),
then timed alternately, with the same weights. Prints one JSON line: compile seconds (trace +
lower + compile; the program compiled first tends to take longer, so run it with
``--reverse`` too), median ms of each, their ratio (this tree / revision), and the largest
force difference::

    python benchmarks/ab_revision.py --rev 6a2f915 --natoms 1000 --lmax 1 --threads 1
    python benchmarks/ab_revision.py --rev 6a2f915 --reverse
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def extract(rev: str, dest: str) -> str:
    """``eqlr_jax`` at ``rev`` as package ``eqlr_jax_rev`` under ``dest``; returns its name."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "eqlr_jax"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    pkg = os.path.join(dest, "eqlr_jax_rev")
    os.rename(os.path.join(dest, "eqlr_jax"), pkg)
    for folder, _, files in os.walk(pkg):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                text = open(path).read()
                open(path, "w").write(re.sub(r"\b(from|import) eqlr_jax\b", r"\1 eqlr_jax_rev", text))
    return "eqlr_jax_rev"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rev", required=True, help="git revision to compare against")
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=15)
    p.add_argument("--reverse", action="store_true", help="compile this tree first")
    a = p.parse_args()
    from bench_sr import pin_cores

    pin_cores(a.threads)
    import jax
    import numpy as np

    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from bench_sr import build_atoms, compile_call

    atoms = build_atoms("nacl", a.natoms)
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        names = {"rev": extract(a.rev, tmp), "tree": "eqlr_jax"}
        order = ["tree", "rev"] if a.reverse else ["rev", "tree"]
        calls = {}
        for k in order:  # one set of weights for both (Potential.init's draws differ between revisions)
            calls[k] = compile_call(atoms, a.lmax, a.dtype, package=names[k],
                                    params=calls[order[0]][1] if calls else None)
    tree = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                          text=True).stdout.strip()
    out = {k: c(q, g) for k, (c, q, g, _) in calls.items()}
    times = {k: [] for k in calls}
    for i in range(a.iters + 2):
        for k, (c, q, g, _) in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(c(q, g))
            if i >= 2:
                times[k].append(1e3 * (time.perf_counter() - t0))
    ms = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps(dict(rev=a.rev, tree=tree, natoms=a.natoms, lmax=a.lmax, dtype=a.dtype, threads=a.threads,
                          compiled_first=order[0], compile_s={k: round(calls[k][3], 2) for k in order},
                          median_ms={k: round(v, 1) for k, v in ms.items()},
                          ratio_tree_over_rev=round(ms["tree"] / ms["rev"], 3),
                          max_force_diff=float(np.max(np.abs(out["tree"]["forces"] - out["rev"]["forces"]))))))


if __name__ == "__main__":
    main()
