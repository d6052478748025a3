#!/usr/bin/env python
"""Parity plots of every model in ``experiments/models/`` on its dataset's test split:
``experiments/results/parity/<run>.png`` (energy, forces, and charges and dipoles where the
model and the data have them).

    python experiments/parity.py [--only REGEX]
"""
import argparse
import glob
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matrix import HERE, parse_run_name, receptive_field  # noqa: E402
from physics import _split  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=None, help="a regular expression on the run names")
    args = p.parse_args(argv)
    import eqlr_jax
    from eqlr_jax.train.evaluate import parity_plot, predictions

    out = os.path.join(HERE, "results", "parity")
    os.makedirs(out, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(HERE, "models", "*.eqlr"))):
        name = os.path.basename(path)[:-5]
        if args.only and not re.search(args.only, name):
            continue
        dataset, model = parse_run_name(name)
        frames, splits = _split(dataset)
        pairs = predictions(eqlr_jax.load(path), [frames[i] for i in splits["test"]], 8, np.float32)
        parity_plot(pairs, os.path.join(out, f"{name}.png"),
                    f"{dataset}, {model} (receptive field {receptive_field(model):g} Å): test split")
        print(os.path.join(out, f"{name}.png"))


if __name__ == "__main__":
    main()
