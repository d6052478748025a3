#!/usr/bin/env python
"""Copy the reference data the experiments use into ``experiments/data/``, gzip-compressed
(ASE reads ``.xyz.gz``), so that the experiments run on a fresh clone: the GFN-xTB sets, the
SPICE dipeptides and the LODE dimers of ``../shared/data`` (read-only there). Frames are
copied byte for byte; nothing is re-labelled.

    python experiments/datasets/copy_reference_data.py [--source ../shared/data]
"""
import argparse
import gzip
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FILES = [f"xtb/{n}.xyz" for n in ("carbon_chain_C10H2", "carbon_chain_C10H3p", "ag3", "nacl_Na9Cl8p",
                                  "nacl_Na8Cl8p", "au2_mgo", "au2_mgo_al")]
FILES += ["spice-dipeptides/train.xyz", "spice-dipeptides/val.xyz"]
FILES += [f"lode-dimers/train-id{i}.xyz" for i in (0, 2, 3, 4, 5, 6)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--out", default=os.path.join(ROOT, "experiments", "data"))
    args = p.parse_args(argv)
    for rel in FILES:
        src = os.path.join(args.source, rel)
        dst = os.path.join(args.out, rel + ".gz")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(src, "rb") as fi, gzip.GzipFile(dst, "wb", compresslevel=9, mtime=0) as fo:
            shutil.copyfileobj(fi, fo)
        print(f"{rel}: {os.path.getsize(src) / 2**20:.1f} MB -> {os.path.getsize(dst) / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
