#!/usr/bin/env python
"""Peer baseline: time the official PyTorch NequIP (mir-group `nequip` 0.19.x) on CPU.

One invocation = one configuration; it prints exactly one JSON line on stdout
(everything else goes to stderr), so runs can be collected with `>> results.jsonl`.

Two things are timed for every configuration (energy + forces, one forward
pass plus the autograd force pass; NequIP's ForceStressOutput also returns the
virial/stress in the same backward, there is no switch to skip it):

  ase_ms   end to end through `nequip.integrations.ase.NequIPCalculator`
           (ase.Atoms -> neighbour list (matscipy) -> model -> numpy results)
  model_ms the model alone on a pre-built graph (positions, edge_index,
           edge_cell_shift, cell, atom_types already tensors)
  nl_ms    the calculator's data preparation alone (from_ase + type mapping +
           neighbour list), for reference

`--mode eager` uses the model as built (PyTorch eager, e3nn "eager" codegen).
`--mode aoti` exports the same model with AOTInductor exactly like
`nequip-compile --mode aotinductor --device cpu --target ase` does, caches the
`.nequip.pt2` file, and loads it with `NequIPCalculator.from_compiled_model`.

Structures:
  --system nacl  --natoms N : rock-salt NaCl, ase.build.bulk('NaCl','rocksalt',
                              a=5.64, cubic=True).repeat(k) with k = round((N/8)**(1/3)),
                              periodic, rattled (stdev 0.05 A, seed 0)
  --system chain            : linear H-(C#C)5-H (C10H2 polyyne) along x, C#C 1.21 A,
                              C-C 1.33 A, C-H 1.06 A, centred in a box with 10 A of
                              vacuum, not periodic, not rattled (unless --rattle)

Example:
  python benchmarks/peer_nequip.py --system nacl --natoms 512 --lmax 1 --dtype float32 --mode eager
"""
import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings


def build_atoms(system, natoms, rattle, seed):
    import ase
    import ase.build

    if system == "nacl":
        k = max(1, round((natoms / 8.0) ** (1.0 / 3.0)))
        atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((k, k, k))
        stdev = 0.05 if rattle is None else rattle
    elif system == "chain":
        # H - C#C - C#C - C#C - C#C - C#C - H
        symbols = ["H"] + ["C"] * 10 + ["H"]
        bonds = [1.06] + [1.21 if i % 2 == 0 else 1.33 for i in range(9)] + [1.06]
        x = [0.0]
        for b in bonds:
            x.append(x[-1] + b)
        atoms = ase.Atoms(symbols=symbols, positions=[(xi, 0.0, 0.0) for xi in x], pbc=False)
        atoms.center(vacuum=10.0)
        stdev = 0.0 if rattle is None else rattle
    else:
        raise ValueError(system)
    if stdev > 0:
        atoms.rattle(stdev=stdev, seed=seed)
    return atoms


def default_species(system):
    return {"nacl": ["Na", "Cl"], "chain": ["C", "H"]}[system]


def median_ms(fn, n_warmup, n_iter):
    """Median and min wall time (ms) of n_iter calls after n_warmup calls; also median process CPU time."""
    for _ in range(n_warmup):
        fn()
    ts, cs = [], []
    for _ in range(n_iter):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
        cs.append((time.process_time() - c0) * 1e3)
    return statistics.median(ts), min(ts), ts, statistics.median(cs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=["nacl", "chain"], default="nacl")
    p.add_argument("--natoms", type=int, default=64, help="target atom count for nacl (64, 512, 1000, 4096, ...)")
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--mode", choices=["eager", "aoti"], default="eager")
    p.add_argument("--species", nargs="+", default=None, help="model type names (default: Na Cl for nacl, C H for chain)")
    p.add_argument("--r-max", type=float, default=5.0)
    p.add_argument("--num-features", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--num-bessels", type=int, default=8)
    p.add_argument("--poly-p", type=int, default=6)
    p.add_argument("--radial-depth", type=int, default=2)
    p.add_argument("--radial-width", type=int, default=64)
    p.add_argument("--parity", action=argparse.BooleanOptionalAction, default=True,
                   help="NequIP `parity` (default True = NequIPGNNModel default, both parities per l)")
    p.add_argument("--avg-num-neighbors", type=float, default=20.0, help="only rescales sums; no effect on cost")
    p.add_argument("--rattle", type=float, default=None, help="rattle stdev in A (default 0.05 nacl, 0 chain)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "peer_nequip_aoti"),
                   help="where AOTInductor .nequip.pt2 files are cached (mode aoti)")
    p.add_argument("--skip-ase", action="store_true", help="time the model call only")
    p.add_argument("--all-times", action="store_true", help="include every timed call in the JSON")
    p.add_argument("--compile-only", action="store_true", help="mode aoti: build/cache the .nequip.pt2 and exit")
    args = p.parse_args()

    # keep library chatter off stdout: the only stdout line is the JSON result
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    warnings.filterwarnings("ignore")

    import torch

    torch.set_num_threads(args.threads)

    import nequip
    from nequip.integrations.ase import NequIPCalculator
    from nequip.integrations.utils import basic_transforms
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import get_latest_global_state, set_global_state

    set_global_state(allow_tf32=False)
    torch.set_num_threads(args.threads)

    species = args.species or default_species(args.system)
    atoms = build_atoms(args.system, args.natoms, args.rattle, args.seed)

    hparams = dict(
        type_names=list(species),
        r_max=args.r_max,
        l_max=args.lmax,
        parity=args.parity,
        num_features=args.num_features,
        num_layers=args.num_layers,
        num_bessels=args.num_bessels,
        polynomial_cutoff_p=args.poly_p,
        radial_mlp_depth=args.radial_depth,
        radial_mlp_width=args.radial_width,
        avg_num_neighbors=args.avg_num_neighbors,
        per_type_energy_scales=1.0,
        per_type_energy_shifts=0.0,
    )
    model = NequIPGNNModel(seed=args.seed, model_dtype=args.dtype, **hparams)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    species_map = {s: s for s in species}

    eager_calc = NequIPCalculator(
        model, "cpu",
        transforms=basic_transforms(model.metadata, args.r_max, species, species_map),
    )

    compile_s = None
    aoti_cached = None
    if args.mode == "eager":
        calc = eager_calc
    else:
        from nequip.scripts._compile_utils import AOTI_ASE_TARGET, COMPILE_TARGET_DICT
        from nequip.utils.aot import aot_export_model
        from nequip.utils.aoti_metadata import (
            NEQUIP_AOTI_INPUTS_KEY,
            NEQUIP_AOTI_OUTPUTS_KEY,
            serialize_aoti_keys,
        )

        key = json.dumps(dict(hparams, dtype=args.dtype, seed=args.seed,
                              nequip=nequip.__version__, torch=torch.__version__), sort_keys=True)
        tag = hashlib.sha1(key.encode()).hexdigest()[:12]
        os.makedirs(args.cache_dir, exist_ok=True)
        pt2 = os.path.join(args.cache_dir, f"{'-'.join(species)}-l{args.lmax}-{args.dtype}-{tag}.nequip.pt2")
        aoti_cached = os.path.exists(pt2)
        if not aoti_cached:
            target = COMPILE_TARGET_DICT[AOTI_ASE_TARGET]
            batch_map = target["batch_map_settings"]({
                "graph": torch.export.Dim.STATIC,
                "node": torch.export.Dim("num_nodes", min=2, max=torch.inf),
                "edge": torch.export.Dim("num_edges", min=2, max=torch.inf),
            })
            example = target["data_settings"](dict(eager_calc.atoms_to_data(atoms)))
            meta = dict(model.metadata)
            for k, v in get_latest_global_state(only_metadata_related=True).items():
                meta[k] = str(int(v)) if isinstance(v, bool) else v
            meta[NEQUIP_AOTI_INPUTS_KEY] = serialize_aoti_keys(target["input"])
            meta[NEQUIP_AOTI_OUTPUTS_KEY] = serialize_aoti_keys(target["output"])
            meta = {k: str(v) for k, v in meta.items()}
            tmp = pt2 + f".tmp{os.getpid()}.nequip.pt2"
            t0 = time.perf_counter()
            aot_export_model(
                model=model, device="cpu",
                input_fields=target["input"], output_fields=target["output"],
                data=example, batch_map=batch_map, output_path=tmp,
                inductor_configs={"aot_inductor.metadata": meta}, seed=1,
            )
            compile_s = time.perf_counter() - t0
            os.replace(tmp, pt2)
        if args.compile_only:
            real_stdout.write(json.dumps(dict(pt2=os.path.basename(pt2), cached=aoti_cached,
                                              compile_s=None if compile_s is None else round(compile_s, 1))) + "\n")
            return
        calc = NequIPCalculator.from_compiled_model(pt2, device="cpu", chemical_species_to_atom_type_map=True)
        torch.set_num_threads(args.threads)

    # --- pre-built graph for the model-only timing ---
    data = calc.atoms_to_data(atoms)
    n_atoms = len(atoms)
    n_edges = int(data["edge_index"].shape[1])

    def model_call():
        out = calc.call_model(dict(data))
        return out["total_energy"], out["forces"]

    e0, f0 = model_call()
    energy = float(e0.detach().reshape(()))
    fmax = float(f0.detach().abs().max())
    load_before = os.getloadavg()[0]
    model_ms, model_min, model_all, model_cpu = median_ms(model_call, args.warmup, args.iters)

    nl_ms, _, _, _ = median_ms(lambda: calc.atoms_to_data(atoms), args.warmup, args.iters)

    ase_ms = ase_min = ase_all = ase_cpu = None
    if not args.skip_ase:
        atoms.calc = calc

        def ase_call():
            calc.reset()
            e = atoms.get_potential_energy()
            f = atoms.get_forces()
            return e, f

        ase_ms, ase_min, ase_all, ase_cpu = median_ms(ase_call, args.warmup, args.iters)
    load_after = os.getloadavg()[0]

    res = dict(
        impl="nequip-torch",
        nequip=nequip.__version__,
        torch=torch.__version__,
        mode=args.mode,
        system=args.system,
        n_atoms=n_atoms,
        n_edges=n_edges,
        species=species,
        l_max=args.lmax,
        parity=args.parity,
        dtype=args.dtype,
        num_features=args.num_features,
        num_layers=args.num_layers,
        r_max=args.r_max,
        num_bessels=args.num_bessels,
        poly_p=args.poly_p,
        radial_mlp=[args.radial_width] * args.radial_depth,
        n_params=n_params,
        threads=torch.get_num_threads(),
        warmup=args.warmup,
        iters=args.iters,
        model_ms=round(model_ms, 3),
        model_ms_min=round(model_min, 3),
        model_us_per_atom=round(model_ms * 1e3 / n_atoms, 2),
        model_cpu_ms=round(model_cpu, 3),
        ase_ms=None if ase_ms is None else round(ase_ms, 3),
        ase_ms_min=None if ase_min is None else round(ase_min, 3),
        ase_us_per_atom=None if ase_ms is None else round(ase_ms * 1e3 / n_atoms, 2),
        ase_cpu_ms=None if ase_cpu is None else round(ase_cpu, 3),
        nl_ms=round(nl_ms, 3),
        compile_s=None if compile_s is None else round(compile_s, 1),
        aoti_cached=aoti_cached,
        energy=energy,
        fmax=fmax,
        loadavg_1min=[round(load_before, 2), round(load_after, 2)],
        max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    )
    if args.all_times:
        res["model_ms_all"] = [round(t, 3) for t in model_all]
        res["ase_ms_all"] = None if ase_all is None else [round(t, 3) for t in ase_all]
    real_stdout.write(json.dumps(res) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
