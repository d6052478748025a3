#!/usr/bin/env python
"""The PyTorch NequIP peer on a CUDA GPU: one configuration per run, one JSON line on stdout.

``benchmarks/peer_nequip.py`` times the peer on the CPU only (its device is fixed). This
script builds the same model the same way (``nequip.model.NequIPGNNModel`` 0.19, seed 0, the
hyperparameters of the race: r_max 5 Å, 32 features with both parities, 4 layers, 8 Bessel
functions, p = 6, radial MLP 2 × 64), on the same structure (``bench_sr.build_atoms``: rattled
rock-salt NaCl), and times it in eager mode on ``--device`` (default ``cuda``):

* ``model_ms``: energy + forces (+ the virial NequIP always computes) on a pre-built graph,
  ``torch.cuda.synchronize()`` before the clock stops; median of ``--iters`` calls;
* ``ase_ms``: end to end through ``NequIPCalculator`` (matscipy neighbour list on the host);
* ``gpu_peak_mb``: ``torch.cuda.max_memory_allocated`` over the model calls.

TF32 is off (``set_global_state(allow_tf32=False)``), as the race runs ours at full float32
matmul precision. Usage::

    python benchmarks/peer_gpu.py --natoms 1000 --lmax 1
"""
import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", default="cuda")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--skip-ase", action="store_true")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (default off)")
    a = p.parse_args()
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # keep library chatter off stdout
    warnings.filterwarnings("ignore")

    import nequip
    import torch
    from nequip.integrations.ase import NequIPCalculator
    from nequip.integrations.utils import basic_transforms
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    from bench_sr import build_atoms, median_ms

    set_global_state(allow_tf32=a.tf32)
    species = ["Na", "Cl"]
    atoms = build_atoms("nacl", a.natoms)
    model = NequIPGNNModel(seed=0, model_dtype=a.dtype, type_names=species, r_max=5.0, l_max=a.lmax, parity=True,
                           num_features=32, num_layers=4, num_bessels=8, polynomial_cutoff_p=6,
                           radial_mlp_depth=2, radial_mlp_width=64, avg_num_neighbors=20.0,
                           per_type_energy_scales=1.0, per_type_energy_shifts=0.0)
    model.eval()
    n_params = sum(q.numel() for q in model.parameters())
    calc = NequIPCalculator(model, a.device,
                            transforms=basic_transforms(model.metadata, 5.0, species, {s: s for s in species}))
    cuda = a.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(fn, warmup, iters):
        """(median ms, all ms) of fn followed by a device synchronisation."""
        med, _, ts = median_ms(lambda: (fn(), sync()), warmup, iters)
        return med, ts

    data = calc.atoms_to_data(atoms)

    def model_call():
        out = calc.call_model(dict(data))
        return out["total_energy"], out["forces"]

    t0 = time.perf_counter()
    e0, _ = model_call()
    sync()
    first_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model_ms, all_ms = timed(model_call, a.warmup, a.iters)
    row = dict(code="nequip-torch", mode="eager", device=torch.cuda.get_device_name() if cuda else "cpu",
               torch=torch.__version__, nequip=nequip.__version__, natoms=len(atoms),
               edges=int(data["edge_index"].shape[1]), lmax=a.lmax, dtype=a.dtype, tf32=a.tf32, n_params=n_params,
               first_call_s=round(first_s, 3), model_ms=round(model_ms, 3),
               model_ms_all=[round(t, 3) for t in all_ms], energy=float(e0.detach().reshape(())))
    if cuda:
        row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if not a.skip_ase:
        atoms.calc = calc

        def ase_call():
            calc.reset()
            atoms.get_potential_energy()
            atoms.get_forces()

        row["ase_ms"] = round(timed(ase_call, 1, a.iters)[0], 3)
    real_stdout.write(json.dumps(row) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
