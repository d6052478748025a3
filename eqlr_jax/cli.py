"""Command line of eqlr_jax: ``demo``, ``train``, ``evaluate``, ``md`` (molecular dynamics,
:mod:`eqlr_jax.md_cli`), ``info``."""
from __future__ import annotations

import argparse
import json
import sys


def _demo(args) -> int:
    import eqlr_jax

    from .demo import run_demo

    print(f"eqlr_jax {eqlr_jax.__version__}: short-range against long-range NequIP on the bundled carbon chains "
          "(GFN2-xTB, neutral C10H2 and protonated C10H3+)")
    _setup_cache(args)
    run_demo(args.out, minutes=args.minutes, features=args.features, seed=args.seed, extra=args.overrides)
    return 0


def _info(args) -> int:
    import eqlr_jax

    pot = eqlr_jax.load(args.model)
    print(json.dumps({"config": pot.config.to_dict(), "num_params": pot.num_params()}, indent=1))
    return 0


def _train(args) -> int:
    from .train import load_config, train

    cfg = load_config(args.config, args.overrides)
    if cfg.run.dtype == "float64":  # the command line is an application: it may turn float64 on
        import jax

        jax.config.update("jax_enable_x64", True)
    run = train(cfg)
    last = run.metrics[-1] if run.metrics else {}
    summary = {k: round(v, 4) for k, v in last.items() if k.startswith("valid_") and isinstance(v, float)}
    print(f"done: {len(run.metrics)} epochs, best model {run.out_dir}/best.eqlr, last validation {summary}, "
          f"compiles {run.compiles}")
    return 0


def _evaluate(args) -> int:
    import eqlr_jax

    from .train.data import Keys
    from .train.evaluate import evaluate

    if args.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    pot = eqlr_jax.load(args.model)
    keys = Keys(energy=args.energy_key, forces=args.forces_key, stress=args.stress_key, charges=args.charges_key,
                dipole=args.dipole_key, total_charge=args.total_charge_key)
    result = evaluate(pot, args.data, keys, out_dir=args.out, batch_size=args.batch_size, dtype=args.dtype)
    for k, m in result.items():
        print(f"{k:8s} RMSE {m['rmse']:10.4f}  MAE {m['mae']:10.4f}  {m['unit']}  (n = {m['n']})")
    print(f"parity plots: {args.out}/parity.png")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
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
    d = sub.add_parser("demo", help="train SR and LR models on the bundled carbon chains and compare them")
    d.add_argument("--out", default="demo-run", help="output directory (models, metrics, plots)")
    d.add_argument("--minutes", type=float, default=2.5, help="training time of each model")
    d.add_argument("--features", type=int, default=16, help="features per irrep of both models")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("overrides", nargs="*", help="training config overrides for both models (section.key=value)")
    _cache_options(d)
    d.set_defaults(func=_demo)
    from .train.config import help_text

    t = sub.add_parser("train", help="train a model from a YAML config", epilog=help_text(),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model: eqlr-jax train config.yaml [section.key=value ...]. "
                                   "Unknown keys are an error.")
    t.add_argument("config", help="YAML file with sections data, model, loss, optim, run")
    t.add_argument("overrides", nargs="*", help="section.key=value, e.g. optim.lr=1e-3 run.epochs=20")
    t.set_defaults(func=_train)
    e = sub.add_parser("evaluate", help="RMSE/MAE of a model on a dataset, and parity plots")
    e.add_argument("model", help="model file (eqlr_jax.save)")
    e.add_argument("data", help="extended XYZ or ASE database with reference values")
    e.add_argument("--out", default=".", help="directory for parity.png")
    e.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    for name, default in (("energy", "energy"), ("forces", "forces"), ("stress", "stress"), ("charges", "charges"),
                          ("dipole", "dipole"), ("total-charge", "total_charge")):
        e.add_argument(f"--{name}-key", default=default, help=f"key of the {name.replace('-', ' ')} in the file")
    e.set_defaults(func=_evaluate)
    i = sub.add_parser("info", help="describe a model file")
    i.add_argument("model")
    i.set_defaults(func=_info)
    from .md_cli import add_md_parser

    add_md_parser(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"eqlr-jax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
