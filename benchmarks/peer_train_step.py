#!/usr/bin/env python
"""Peer baseline for training: one training step of the official PyTorch NequIP 0.19 on CPU.

Run it with the peer's venv (``benchmarks/setup_peer.sh``); it prints one JSON line on stdout.
The model is the inference race's (``peer_nequip.py``: r_max 5 Å, 32 features with both
parities, 4 layers, 8 Bessel functions, radial MLP 2 × 64, species Na Cl), built by NequIP's own
training module, and the step is NequIP's own training code path:

* ``nequip.train.NequIPLightningModule`` with ``model`` = ``nequip.model.NequIPGNNModel``,
  ``loss`` = ``nequip.train.EnergyForceLoss`` (per-atom energy MSE + force MSE, coefficients
  1 and 1, which NequIP normalises to 0.5 and 0.5) and ``optimizer`` = ``torch.optim.Adam``
  (lr 1e-3), made by the module's ``configure_optimizers``;
* the batch: each structure through ``from_ase`` and the calculator's data transforms (species
  to type mapping, matscipy neighbour list), collated with ``AtomicDataDict.batched_from_list``
  (the datamodule's default ``collate_fn``), built once;
* one step = ``optimizer.zero_grad()``, ``module.training_step(batch)`` (the model's forward in
  training mode: energy, forces by autograd with ``create_graph=True``, then the loss),
  ``loss.backward()``, ``optimizer.step()`` -- what Lightning's automatic optimisation runs,
  without the Trainer's hooks and logging (``--lightning`` times a real ``lightning.Trainer``
  instead, from each batch's start hook to its end hook).

The structures (``train_structures``, shared with ``race_train.py``): B rattled rock-salt NaCl
cells (``peer_nequip.build_atoms``, rattle seed b for structure b) with made-up reference
energies and forces from a fixed numpy seed. Only the time matters, not the numbers.

    benchmarks/.peer-venv/bin/python benchmarks/peer_train_step.py --natoms 64 --batch 4 --threads 1
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from peer_nequip import build_atoms  # noqa: E402


def train_structures(batch: int, natoms: int, seed: int = 0):
    """``batch`` rattled NaCl cells of about ``natoms`` atoms with reference energies (eV) and
    forces (eV/Å) in a SinglePointCalculator: the same on both sides of the race."""
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    out = []
    for b in range(batch):
        atoms = build_atoms("nacl", natoms, None, seed + b)
        n = len(atoms)
        energy = float(-3.3 * n + rng.normal(0.0, 0.1 * np.sqrt(n)))
        forces = rng.normal(0.0, 0.5, (n, 3))
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        out.append(atoms)
    return out


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(1e3 * (time.perf_counter() - t0))
        cpu.append(1e3 * (time.process_time() - c0))
    return statistics.median(wall), statistics.median(cpu), wall


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--natoms", type=int, default=64, help="atoms per NaCl cell (64, 512, ...)")
    p.add_argument("--batch", type=int, default=4, help="structures per batch")
    p.add_argument("--lmax", type=int, default=1)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--r-max", type=float, default=5.0)
    p.add_argument("--num-features", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--lightning", action="store_true",
                   help="time lightning.Trainer.fit on the same batch (batch start hook to batch end hook)")
    args = p.parse_args()

    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # library chatter to stderr; the only stdout line is the JSON
    warnings.filterwarnings("ignore")

    import torch

    torch.set_num_threads(args.threads)

    import nequip
    from nequip.data import AtomicDataDict, from_ase
    from nequip.integrations.utils import basic_transforms
    from nequip.train import NequIPLightningModule
    from nequip.utils.global_state import set_global_state

    set_global_state(allow_tf32=False)
    torch.set_num_threads(args.threads)

    species = ["Na", "Cl"]
    model_cfg = dict(
        _target_="nequip.model.NequIPGNNModel", seed=args.seed, model_dtype=args.dtype, type_names=species,
        r_max=args.r_max, l_max=args.lmax, parity=True, num_features=args.num_features, num_layers=args.num_layers,
        num_bessels=8, polynomial_cutoff_p=6, radial_mlp_depth=2, radial_mlp_width=64, avg_num_neighbors=20.0,
        per_type_energy_scales=1.0, per_type_energy_shifts=0.0,
    )
    module = NequIPLightningModule(
        model=model_cfg,
        num_datasets=dict(train=1, val=0, test=0, predict=0),
        optimizer={"_target_": "torch.optim.Adam", "lr": args.lr},
        loss={"_target_": "nequip.train.EnergyForceLoss", "per_atom_energy": True,
              "coeffs": {"total_energy": 1.0, "forces": 1.0}},
    )
    module.train()
    model = module.model["sole_model"]
    n_params = sum(q.numel() for q in model.parameters())

    transforms = basic_transforms(model.metadata, args.r_max, species, {s: s for s in species})
    structures = train_structures(args.batch, args.natoms, args.seed)
    items = []
    for atoms in structures:
        d = from_ase(atoms)
        for t in transforms:
            d = t(d)
        items.append(d)
    batch = AtomicDataDict.batched_from_list(items)
    n_atoms = int(AtomicDataDict.num_nodes(batch))
    n_edges = int(batch[AtomicDataDict.EDGE_INDEX_KEY].shape[1])

    losses = []
    if args.lightning:
        wall, cpu, first_s = lightning_times(module, batch, args)
    else:
        optim = module.configure_optimizers()

        def step():
            optim.zero_grad(set_to_none=True)
            loss = module.training_step(dict(batch), 0)  # the model's forward modifies its input dict
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))

        t0 = time.perf_counter()
        step()
        first_s = time.perf_counter() - t0
        med, med_cpu, wall = median_ms(step, max(args.warmup - 1, 0), args.iters)
        cpu = [med_cpu]
    res = dict(
        code="nequip-torch", nequip=nequip.__version__, torch=torch.__version__,
        mode="lightning-trainer" if args.lightning else "training_step+backward+Adam",
        natoms=args.natoms, batch=args.batch, n_atoms=n_atoms, edges=n_edges, lmax=args.lmax, dtype=args.dtype,
        features=args.num_features, layers=args.num_layers, n_params=n_params, threads=torch.get_num_threads(),
        warmup=args.warmup, iters=args.iters, first_step_s=round(first_s, 3),
        step_ms=round(statistics.median(wall), 3), step_ms_min=round(min(wall), 3),
        step_cpu_ms=round(statistics.median(cpu), 3), step_ms_all=[round(t, 2) for t in wall],
        loss_first=None if not losses else losses[0], loss_last=None if not losses else losses[-1],
        loadavg_1min=round(os.getloadavg()[0], 2),
        max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    )
    real_stdout.write(json.dumps(res) + "\n")
    real_stdout.flush()


def lightning_times(module, batch, args):
    """Per-step wall and CPU times (ms) of ``lightning.Trainer.fit`` on one batch repeated,
    measured from ``on_train_batch_start`` to ``on_train_batch_end``; and the first step's s."""
    import lightning
    import torch

    class Repeat(torch.utils.data.Dataset):
        def __len__(self):
            return args.warmup + args.iters

        def __getitem__(self, i):
            return batch

    class Timer(lightning.Callback):
        def __init__(self):
            self.wall, self.cpu = [], []

        def on_train_batch_start(self, trainer, pl_module, b, i):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, pl_module, outputs, b, i):
            self.wall.append(1e3 * (time.perf_counter() - self.t0))
            self.cpu.append(1e3 * (time.process_time() - self.c0))

    loader = torch.utils.data.DataLoader(Repeat(), batch_size=None, collate_fn=lambda d: dict(d))
    timer = Timer()
    trainer = lightning.Trainer(accelerator="cpu", devices=1, max_steps=args.warmup + args.iters, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
    torch.set_num_threads(args.threads)
    trainer.fit(module, train_dataloaders=loader)
    return timer.wall[args.warmup:], timer.cpu[args.warmup:], timer.wall[0] / 1e3


if __name__ == "__main__":
    main()
