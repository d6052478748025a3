#!/usr/bin/env python
"""Write ``experiments/configs/<dataset>_<model>.yaml`` for every cell of the main table
(``matrix.py``). Each is an ordinary ``eqlr-jax train`` config; edit ``matrix.py``, not them.

    python experiments/make_configs.py
"""
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matrix import DATASETS, HERE, MODELS, config, receptive_field, run_name  # noqa: E402


def main():
    out = os.path.join(HERE, "configs")
    os.makedirs(out, exist_ok=True)
    for d, spec in DATASETS.items():
        for m in MODELS:
            path = os.path.join(out, run_name(d, m) + ".yaml")
            head = (f"# {spec['what']}; model {m} (receptive field {receptive_field(m):g} Å).\n"
                    f"# Written by experiments/make_configs.py from experiments/matrix.py: edit those.\n"
                    f"# eqlr-jax train {os.path.relpath(path, os.path.dirname(HERE))} [section.key=value ...]\n")
            with open(path, "w") as fh:
                fh.write(head + yaml.safe_dump(config(d, m), sort_keys=False))
            print(path)


if __name__ == "__main__":
    main()
