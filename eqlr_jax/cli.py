"""Command line: ``eqlr-jax demo`` (build, save, reload and use a model through ASE) and
``eqlr-jax info MODEL`` (describe a model file), ``eqlr-jax md MODEL STRUCTURE`` (molecular dynamics,
:mod:`eqlr_jax.md`). Later issues add ``train`` and ``evaluate``."""
from __future__ import annotations

import argparse
import json
import sys
import time


def _demo(args) -> int:
    import ase.build
    import numpy as np
    from ase.optimize import BFGS

    import eqlr_jax

    print(f"eqlr_jax {eqlr_jax.__version__}: short-range NequIP demo (random weights, not a trained model)")
    _setup_cache(args)
    config = eqlr_jax.NequIPConfig(species=("Na", "Cl"), r_max=args.r_max, l_max=args.l_max,
                                   num_features=args.features, num_layers=args.layers)
    pot = eqlr_jax.Potential.init(config, seed=args.seed)
    print(f"model: l_max={config.l_max}, {config.num_features} features, {config.num_layers} layers, "
          f"r_max={config.r_max} Å, {pot.num_params():,} parameters")
    eqlr_jax.save(args.model, pot)
    pot = eqlr_jax.load(args.model)
    print(f"saved and reloaded {args.model}")

    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(args.repeat)
    atoms.rattle(stdev=0.05, seed=args.seed)
    atoms.calc = pot.calculator()
    t0 = time.perf_counter()
    e0 = atoms.get_potential_energy()
    t_first = time.perf_counter() - t0
    f0 = np.abs(atoms.get_forces()).max()
    print(f"{len(atoms)} atoms (rattled rock-salt NaCl): E = {e0:.6f} eV, max|F| = {f0:.4f} eV/Å, "
          f"stress = {np.round(atoms.get_stress(), 6).tolist()} eV/Å^3  (first call incl. compile "
          f"{t_first:.1f} s)")
    t0 = time.perf_counter()
    opt = BFGS(atoms, logfile="-" if args.verbose else None)
    converged = opt.run(fmax=args.fmax, steps=args.steps)
    dt = time.perf_counter() - t0
    print(f"BFGS relaxation: {opt.get_number_of_steps()} steps in {dt:.1f} s, converged={converged}, "
          f"E = {atoms.get_potential_energy():.6f} eV, max|F| = {np.abs(atoms.get_forces()).max():.4f} eV/Å, "
          f"compiles = {atoms.calc.n_compiles}")
    return 0


def _info(args) -> int:
    import eqlr_jax

    pot = eqlr_jax.load(args.model)
    print(json.dumps({"config": pot.config.to_dict(), "num_params": pot.num_params()}, indent=1))
    return 0


def _setup_cache(args) -> None:
    """Turn the compilation cache on as the options say. An unusable directory given with
    --compile-cache is an error; an unusable default directory only a warning."""
    if args.no_compile_cache:
        return
    import eqlr_jax

    try:
        path = eqlr_jax.enable_compilation_cache(args.compile_cache)
    except OSError as e:
        if args.compile_cache is not None:
            raise
        print(f"eqlr-jax: warning: running without a compilation cache: {e}", file=sys.stderr)
        return
    print(f"compilation cache: {path} (a second run skips XLA compilation; --no-compile-cache to turn off)")


def _cache_options(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--compile-cache", default=None, metavar="DIR",
                       help="persistent compilation cache directory (default: $EQLR_JAX_CACHE_DIR, else "
                            "$XDG_CACHE_HOME/eqlr_jax/xla, else ~/.cache/eqlr_jax/xla)")
    group.add_argument("--no-compile-cache", action="store_true", help="do not keep compiled programs on disk")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="eqlr-jax", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="build a small model, save/reload it, and relax NaCl through ASE")
    d.add_argument("--model", default="demo-model.eqlr", help="where to write the model file")
    d.add_argument("--repeat", type=int, default=2, help="NaCl conventional cell repeats (8 * n^3 atoms)")
    d.add_argument("--l-max", type=int, default=1)
    d.add_argument("--features", type=int, default=16)
    d.add_argument("--layers", type=int, default=2)
    d.add_argument("--r-max", type=float, default=5.0)
    d.add_argument("--fmax", type=float, default=0.01, help="force convergence, eV/Å")
    d.add_argument("--steps", type=int, default=50)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--verbose", action="store_true")
    _cache_options(d)
    d.set_defaults(func=_demo)
    i = sub.add_parser("info", help="describe a model file")
    i.add_argument("model")
    i.set_defaults(func=_info)
    from .md import add_md_parser

    add_md_parser(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"eqlr-jax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
