#!/usr/bin/env python
"""Copy the reference data the experiments use into ``experiments/data/``, gzip-compressed
(ASE reads ``.xyz.gz``), so that the experiments run on a fresh clone: the GFN-xTB sets, the
SPICE dipeptides, the LODE dimers and the four DFT Au2/MgO slabs of ``../shared/data`` (read-only there). Frames are
copied byte for byte; nothing is re-labelled.

The LODE dimers are also written as one training file, ``lode-dimers/dimers.xyz.gz``: the same
geometries, energies and forces, with ``info["total_charge"]`` (e; chargeA + chargeB, which the
source keeps apart) added and the 30 Å box removed. The reference energies are of gas-phase
dimers (the box is only the LODE representation's), so the models treat them as molecules.

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
FILES += [f"au2-mgo-dft/{n}-{s}.xyz" for n in (1, 3) for s in ("doped", "undoped")]


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
    lode_training_file(args.out)


def lode_training_file(out: str) -> str:
    """``lode-dimers/dimers.xyz.gz``: every LODE dimer, open boundaries, with its total charge."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for i in (0, 2, 3, 4, 5, 6):
        for a in ase.io.read(os.path.join(out, f"lode-dimers/train-id{i}.xyz.gz"), ":"):
            b = a.copy()
            b.info["total_charge"] = int(a.info["chargeA"]) + int(a.info["chargeB"])
            b.set_cell(None)
            b.pbc = False
            b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces())
            frames.append(b)
    dst = os.path.join(out, "lode-dimers", "dimers.xyz")
    ase.io.write(dst, frames, format="extxyz")
    with open(dst, "rb") as fi, gzip.GzipFile(dst + ".gz", "wb", compresslevel=9, mtime=0) as fo:
        shutil.copyfileobj(fi, fo)
    os.remove(dst)
    print(f"lode-dimers/dimers.xyz.gz: {len(frames)} frames")
    return dst + ".gz"


if __name__ == "__main__":
    main()
