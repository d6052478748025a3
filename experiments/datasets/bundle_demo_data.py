#!/usr/bin/env python
"""Write the demo's bundled data set: every 16th frame of the GFN2-xTB carbon chains, neutral
C10H2 and protonated C10H3+ (../shared/data/xtb), as eqlr_jax/data/carbon_chain.xyz.gz.

    python experiments/datasets/bundle_demo_data.py [--source ../shared/data/xtb] [--every 16]
"""
import argparse
import gzip
import io
import os

import ase.io

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default=os.path.join(ROOT, "..", "shared", "data", "xtb"))
    p.add_argument("--every", type=int, default=16)
    p.add_argument("--out", default=os.path.join(ROOT, "eqlr_jax", "data", "carbon_chain.xyz.gz"))
    args = p.parse_args(argv)
    frames = []
    for name in ("carbon_chain_C10H2.xyz", "carbon_chain_C10H3p.xyz"):
        frames += ase.io.read(os.path.join(args.source, name), f"::{args.every}")
    buf = io.StringIO()
    ase.io.write(buf, frames, format="extxyz")
    with gzip.open(args.out, "wt", compresslevel=9) as fh:
        fh.write(buf.getvalue())
    print(f"{len(frames)} frames -> {args.out} ({os.path.getsize(args.out) / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
