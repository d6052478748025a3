#!/usr/bin/env python
"""Where the time of one SR energy+forces(+stress) call goes, kernel by kernel (CPU or GPU).

Compiles the call of ``bench_sr.py`` (rattled rock-salt NaCl, the race's hyperparameters), runs
it ``--iters`` times under ``jax.profiler.trace`` and sums the device (GPU) or thunk (CPU)
events per fused kernel. Each kernel is attributed to the part of the network that XLA's
``op_name`` metadata names (e.g. ``transpose(jvp(NequIP))/L/while/body/closed_call``: the
backward pass of the convolution in the edge scan, all layers). Prints and writes JSON:

    python benchmarks/profile_sr.py --natoms 10000 --lmax 2 --out prof.json

``--edge-block`` sets ``Runtime.edge_block`` (default "auto"; "none" = one block). ``--hlo FILE``
also writes the optimised HLO text.
"""
import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def op_names(hlo_text):
    """Instruction name -> op_name metadata, from the optimised HLO text."""
    out = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%(\S+) = .*?op_name=\"([^\"]*)\"", line)
        if m:
            out[m.group(1)] = m.group(2)
            out[re.sub(r"[.-]", "_", m.group(1))] = m.group(2)  # GPU kernel names
    return out


def part(op_name, depth):
    name = re.sub(r"layer_\d+", "L", op_name)
    name = re.sub(r"^jit\([^)]*\)/", "", name)
    return "/".join(name.split("/")[:depth])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--edge-block", default="auto", help="int, 'none' or 'auto' (the default)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--depth", type=int, default=6, help="op_name components kept when grouping")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--out", default=None, help="JSON file for the full tables")
    p.add_argument("--hlo", default=None, help="also write the optimised HLO text here")
    a = p.parse_args()

    import jax

    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    from bench_sr import build_atoms, compile_call, edge_block_runtime

    runtime = edge_block_runtime(a.edge_block)
    atoms = build_atoms("nacl", a.natoms)
    comp, params, graph, compile_s = compile_call(atoms, a.lmax, a.dtype, runtime=runtime)
    hlo = comp.as_text()
    if a.hlo:
        with open(a.hlo, "w") as fh:
            fh.write(hlo)
    names = op_names(hlo)

    def call():
        jax.block_until_ready(comp(params, graph))

    call()
    call()
    walls = []
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(a.iters):
                t = time.perf_counter()
                call()
                walls.append(1e3 * (time.perf_counter() - t))
        fn = glob.glob(os.path.join(d, "**", "*perfetto_trace.json.gz"), recursive=True)[0]
        events = json.load(gzip.open(fn))
    events = events["traceEvents"] if isinstance(events, dict) else events
    # GPU: kernels run on the device's streams (pid of a "/device:GPU" process); CPU: thunks
    pids = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    gpu = any("GPU" in n or "gpu" in n for n in pids.values())
    per_kernel = collections.Counter()
    for e in events:
        if e.get("ph") != "X":
            continue
        if gpu and not any(s in pids.get(e["pid"], "") for s in ("GPU", "gpu")):
            continue
        name = e["name"]
        if not gpu and name.startswith(("$", "Thunk", "while")):
            continue
        per_kernel[name] += e.get("dur", 0) / 1e3 / a.iters  # ms per call
    per_part = collections.Counter()
    count = collections.Counter()
    for k, ms in per_kernel.items():
        base = re.sub(r"^(loop_|input_|wrapped_)", "", k)
        on = names.get(k) or names.get(base) or names.get(re.sub(r"[.-]", "_", base)) or "?"
        per_part[part(on, a.depth)] += ms
        count[part(on, a.depth)] += 1
    total = sum(per_kernel.values())
    res = dict(natoms=len(atoms), lmax=a.lmax, dtype=a.dtype, edge_block=str(runtime.edge_block),
               device=jax.devices()[0].device_kind, compile_s=round(compile_s, 2),
               wall_ms=sorted(walls)[len(walls) // 2], kernel_ms=round(total, 2), n_kernels=len(per_kernel),
               parts={k: round(v, 3) for k, v in per_part.most_common()},
               kernels={k: round(v, 3) for k, v in per_kernel.most_common(200)})
    print(f"{res['device']}: {res['natoms']} atoms, l_max {a.lmax}, {a.dtype}, edge_block {res['edge_block']}: "
          f"wall {res['wall_ms']:.1f} ms, kernels {total:.1f} ms ({len(per_kernel)} distinct), "
          f"compile {compile_s:.1f} s")
    for k, v in per_part.most_common(a.top):
        print(f"  {v:9.2f} ms {count[k]:4d}  {k}")
    print("  top kernels:")
    for k, v in per_kernel.most_common(12):
        print(f"  {v:9.2f} ms  {k[:70]}  <- {part(names.get(k, '?'), a.depth)}")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
