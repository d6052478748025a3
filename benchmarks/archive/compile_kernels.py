#!/usr/bin/env python
"""What XLA:CPU compiles for the SR call: kernel modules, their compile time, and the network part
each belongs to.

XLA:CPU compiles every distinct fused kernel as one MLIR module and then one LLVM module. This
script compiles the race's energy + forces + stress call (``bench_sr.compile_call``) in a child
process with ``TF_CPP_VMODULE=fusion_compiler=1,ir_compiler=1,cpu_compiler=1``, reads the
per-module times from its log, and attributes each kernel to a part of the network through the
``op_name`` metadata of the optimised HLO (``layer_N`` merged into ``L``)::

    python benchmarks/archive/compile_kernels.py --natoms 1000 --lmax 1 --threads 1 --depth 3
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, where bench_sr.py is
sys.path.insert(0, HERE)

CHILD = """
import os, sys
sys.path.insert(0, {here!r})
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:{threads}]))
from bench_sr import build_atoms, compile_call
c, _, _, s = compile_call(build_atoms("nacl", {natoms}), {lmax}, {dtype!r})
open({hlo!r}, "w").write(c.as_text())
print("COMPILE_S", s, flush=True)
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--depth", type=int, default=3, help="op_name components kept when grouping")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--kernels", type=int, default=0, help="also list the N slowest kernels to compile")
    a = p.parse_args()
    from profile_sr import op_names, part

    with tempfile.TemporaryDirectory() as d:
        hlo_path = os.path.join(d, "hlo.txt")
        code = CHILD.format(here=HERE, threads=a.threads, natoms=a.natoms, lmax=a.lmax, dtype=a.dtype, hlo=hlo_path)
        env = dict(os.environ, TF_CPP_VMODULE="fusion_compiler=1,ir_compiler=1,cpu_compiler=1", TF_CPP_MIN_LOG_LEVEL="0")
        if a.dtype == "float64":
            env["JAX_ENABLE_X64"] = "1"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        names = op_names(open(hlo_path).read())
    compile_s = float(proc.stdout.split("COMPILE_S")[-1])
    lines = proc.stderr.splitlines()
    # the call's modules are logged between the previous program's summary line and its own
    ends = [i for i, line in enumerate(lines) if "cpu_compiler.cc" in line and "for CPU using JIT time" in line]
    end = ends[-1]
    start = max([i for i in ends if i < end] + [0])
    ms = {"MLIR": collections.Counter(), "LLVM": collections.Counter()}
    for line in lines[start:end]:
        m = re.search(r"Compiled (MLIR|LLVM) module: (\S+) time: ([\d.]+) (ms|us|s) ", line)
        if m:
            t = float(m.group(3)) * {"ms": 1.0, "us": 1e-3, "s": 1e3}[m.group(4)]
            kernel = m.group(2).replace("__compute_module_", "").replace("_kernel_module", "")
            ms[m.group(1)][kernel] += t
    per_part, count = collections.Counter(), collections.Counter()
    for kernel in set(ms["MLIR"]) | set(ms["LLVM"]):
        key = part(names.get(kernel, "?" + kernel), a.depth)
        per_part[key] += ms["MLIR"][kernel] + ms["LLVM"][kernel]
        count[key] += 1
    res = dict(natoms=a.natoms, lmax=a.lmax, dtype=a.dtype, threads=a.threads, compile_s=round(compile_s, 2),
               mlir_modules=len(ms["MLIR"]), mlir_s=round(sum(ms["MLIR"].values()) / 1e3, 2),
               llvm_modules=len(ms["LLVM"]), llvm_s=round(sum(ms["LLVM"].values()) / 1e3, 2),
               median_ms={k: round(statistics.median(v.values()), 1) for k, v in ms.items() if v},
               parts={k: [count[k], round(v / 1e3, 3)] for k, v in per_part.most_common()})
    print(json.dumps({k: v for k, v in res.items() if k != "parts"}))
    for k, v in per_part.most_common(a.top):
        print(f"  {v / 1e3:6.2f} s {count[k]:4d} kernels  {k}")
    if a.kernels:
        total = collections.Counter({k: ms["MLIR"][k] + ms["LLVM"][k] for k in set(ms["MLIR"]) | set(ms["LLVM"])})
        print(f"slowest {a.kernels} kernels (MLIR + LLVM ms, kernel, op_name):")
        for k, v in total.most_common(a.kernels):
            print(f"  {v:7.1f} ms  {k:28s} {names.get(k, '?')}")


if __name__ == "__main__":
    main()
