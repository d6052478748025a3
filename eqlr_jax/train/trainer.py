"""The training loop: data, model from data statistics, epochs with validation, learning-rate
schedule, early stopping, orbax checkpoints (resumable), metrics, plots and model export.

Layout of a run directory::

    config.json     the full configuration          split.json   frame indices of each split
    metrics.jsonl   one line per epoch              checkpoints/ orbax, the last few epochs
    best.eqlr       the EMA parameters of the best validation epoch (eqlr_jax.save)
    final.eqlr      those of the last epoch          learning_curve.png
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from ..ensemble import EnsemblePotential
from ..graph import species_indices
from ..io import save
from ..models import LRConfig, init_params, long_range_spec
from ..potential import Potential
from .batches import BatchMaker
from .config import TrainConfig
from .data import Keys, average_neighbors, force_rms, load_frames, reference_energies, split_indices
from .steps import Steps, local_shards, make_optimizer, mesh_for, shard

__all__ = ["RunExistsError", "prepare", "train", "Run"]


class RunExistsError(FileExistsError):
    """The output directory already holds a run (pass run.resume=true or run.overwrite=true)."""


@dataclasses.dataclass
class Run:
    """What :func:`train` returns: the trained potential (EMA parameters of the best epoch),
    the per-epoch metrics, the splits, and the compile counts."""

    potential: Potential
    metrics: list
    splits: dict
    compiles: dict
    out_dir: str


def _keys(cfg: TrainConfig) -> Keys:
    d = cfg.data
    return Keys(energy=d.energy_key, forces=d.forces_key, stress=d.stress_key, charges=d.charges_key,
                dipole=d.dipole_key, total_charge=d.total_charge_key)


def model_config(cfg: TrainConfig, train_frames) -> LRConfig:
    """The LRConfig of the run: the config's model section, ``auto`` values from the data."""
    md = cfg.model_dict()
    kind = md.pop("kind", "lr")
    species = md.pop("species", "auto")
    if species == "auto":
        species = tuple(sorted({int(z) for f in train_frames for z in f.structure.numbers}))
    probe = LRConfig(species=species)
    for f in train_frames:  # before any statistics: an unknown element is an error naming the frame
        try:
            species_indices(f.structure.numbers, probe.species)
        except ValueError as e:
            raise type(e)(f"{f.source}: {e}") from e
    r_max = md.get("r_max", 5.0)
    if md.get("avg_num_neighbors", "auto") == "auto":
        md["avg_num_neighbors"] = round(average_neighbors(train_frames, r_max), 4)
    if md.get("species_shift", "auto") == "auto":
        md["species_shift"] = tuple(float(x) for x in reference_energies(train_frames, probe.species))
    if md.get("species_scale", "auto") == "auto":
        md["species_scale"] = round(force_rms(train_frames), 6)
    return LRConfig(species=species, long_range=kind == "lr", **md)


def prepare(cfg: TrainConfig):
    """Frames and splits: ``(frames, splits)`` (``splits`` maps train/valid/test to indices)."""
    require = ("energy",) + (("forces",) if cfg.loss.forces > 0 else ())
    paths = [cfg.data.path] if isinstance(cfg.data.path, str) else list(cfg.data.path)
    frames, cap = [], cfg.data.max_frames
    for p in paths:
        if cap is not None and len(frames) >= cap:
            break
        index = ":" if cap is None else f":{cap - len(frames)}"  # read no more than max_frames
        frames += load_frames(p, _keys(cfg), index=index, format=cfg.data.format, require=require)
    splits = split_indices(len(frames), cfg.data.valid_fraction, cfg.data.test_fraction, cfg.data.split_seed)
    if cfg.data.n_train is not None:
        splits["train"] = train_subset(splits["train"], cfg.data.n_train, cfg.data.split_seed)
    return frames, splits


def train_subset(train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of the training indices, drawn at random (seeded), sorted. The draws for growing
    ``n`` are nested (a learning curve adds frames, never swaps them), and they sample the whole
    training split: the frames of a dataset are often in file order (one trajectory, then the
    next system), so the first ``n`` would see one system only."""
    order = np.random.default_rng([seed, 2]).permutation(np.asarray(train))
    return np.sort(order[:n])


def _check_out_dir(cfg: TrainConfig) -> bool:
    """True if the run resumes. Refuses to touch a directory that holds a run unless told."""
    out = cfg.run.out_dir
    has_run = os.path.exists(os.path.join(out, "config.json"))
    if has_run and cfg.run.resume:
        return True
    if has_run and not cfg.run.overwrite:
        raise RunExistsError(f"{out} already holds a run: pass run.resume=true to continue it or "
                             "run.overwrite=true to replace it (nothing was changed)")
    if has_run and jax.process_index() == 0:
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    return False


class _Schedule:
    """Learning rate per step: linear warm-up, then constant, cosine, or drops on plateaus."""

    def __init__(self, o, total_steps: int):
        self.o, self.total = o, max(total_steps, 1)

    def __call__(self, step: int, plateau_scale: float) -> float:
        o = self.o
        if o.warmup_steps and step < o.warmup_steps:
            return o.lr * (step + 1) / o.warmup_steps
        lr = o.lr
        if o.schedule == "cosine":
            t = min(1.0, (step - o.warmup_steps) / max(self.total - o.warmup_steps, 1))
            lr = o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + math.cos(math.pi * t))
        elif o.schedule == "plateau":
            lr = max(o.lr * plateau_scale, o.min_lr)
        return lr


def _step_batches(maker: BatchMaker, order, shards: int):
    """Index arrays of the frames of each training step (``shards`` sub-batches per step; a
    last step with fewer frames than that is dropped when sharding, so all shards are full)."""
    if shards == 1:
        return maker.batches(order)
    per_step = shards * maker.batch_size
    return [order[k:k + per_step] for k in range(0, len(order) - per_step + 1, per_step)]


def _make(maker: BatchMaker, idx, shards: int, mesh):
    """One step's batch; with shards, the sub-batches padded to one capacity and stacked."""
    if shards == 1:
        return maker.make(idx)
    parts = [idx[s * maker.batch_size:(s + 1) * maker.batch_size] for s in range(shards)]
    caps = [maker.capacity(p) for p in parts]
    cap = max(caps, key=lambda c: maker.plan.index(c))  # every process picks the same capacity
    subs = [maker.make(parts[s], capacity=cap) for s in local_shards(mesh, shards)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *subs)
    return shard(stacked, mesh, shards)


def _bootstrap_weights(counts, idx, graph, dtype):
    """(K, G) and (K, N) weights of a batch: each member's count of each frame (0 on padding)."""
    k, g_cap = counts.shape[0], graph.n_graph_capacity
    per_graph = np.zeros((k, g_cap), dtype)
    per_graph[:, :len(idx)] = counts[:, np.asarray(idx)]
    per_node = per_graph[:, np.asarray(graph.node_graph)] * np.asarray(graph.node_mask)[None, :]
    return jnp.asarray(per_graph), jnp.asarray(per_node)


def _summaries(sums: dict) -> dict:
    """RMSEs from accumulated (squared-error sum, count): meV/atom, meV/Å, meV/Å³, me, me·Å."""
    out = {}
    for k, (sq, n) in sums.items():
        if n > 0:
            out[f"{k}_rmse"] = 1000.0 * math.sqrt(sq / n)
    return out


def _evaluate(steps: Steps, params, maker: BatchMaker):
    loss_sum, n_batches, sums = 0.0, 0, {}
    for idx in maker.batches(np.arange(len(maker.frames))):
        g, t = maker.make(idx)
        loss, terms = steps.eval(params, g, t)  # an ensemble: each member's, then their mean
        loss_sum += float(jnp.mean(loss))
        n_batches += 1
        for k, (_, sq, n) in terms.items():
            s = sums.setdefault(k, [0.0, 0.0])
            s[0] += float(jnp.mean(sq)) * float(jnp.mean(n))
            s[1] += float(jnp.mean(n))
    return loss_sum / max(n_batches, 1), _summaries(sums)


def _checkpointer(out_dir: str, keep: int):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(out_dir, "checkpoints")), options=options)


def _save_checkpoint(mngr, epoch: int, state, meta: dict):
    import orbax.checkpoint as ocp

    mngr.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    mngr.wait_until_finished()


def _restore_checkpoint(mngr, state):
    import orbax.checkpoint as ocp

    epoch = mngr.latest_step()
    if epoch is None:
        return None
    try:
        got = mngr.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(state),
                                                          meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for damaged checkpoints
        raise ValueError(f"checkpoint {epoch} in {mngr.directory} is unreadable (corrupt?): {e}") from e
    return got["state"], got["meta"]


def train(cfg: TrainConfig, log=print) -> Run:
    """Train a model as ``cfg`` says (see :mod:`eqlr_jax.train.config`); returns a :class:`Run`."""
    if cfg.run.distributed:
        jax.distributed.initialize()  # coordinator, process count and id from SLURM / Open MPI
    dtype = np.dtype(cfg.run.dtype)
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError("run.dtype=float64 needs jax_enable_x64 (jax.config.update('jax_enable_x64', True))")
    frames, splits = prepare(cfg)
    resume = _check_out_dir(cfg)
    out = cfg.run.out_dir
    primary = jax.process_index() == 0  # with jax.distributed, one process writes the files
    if resume:
        with open(os.path.join(out, "split.json")) as fh:
            splits = {k: np.asarray(v, int) for k, v in json.load(fh).items()}
    train_frames = [frames[i] for i in splits["train"]]
    valid_frames = [frames[i] for i in splits["valid"]] or train_frames
    mconfig = model_config(cfg, train_frames)
    if resume:
        with open(os.path.join(out, "config.json")) as fh:
            mconfig = LRConfig.from_dict(json.load(fh)["model_config"])
    elif primary:
        with open(os.path.join(out, "config.json"), "w") as fh:
            json.dump({"train_config": cfg.to_dict(), "model_config": mconfig.to_dict()}, fh, indent=1)
        with open(os.path.join(out, "split.json"), "w") as fh:
            json.dump({k: v.tolist() for k, v in splits.items()}, fh)
    spec = long_range_spec(mconfig)
    mk = lambda fr, bs, seed: BatchMaker(fr, mconfig.r_max, mconfig.species, spec, bs, dtype,  # noqa: E731
                                         cfg.run.capacity_levels, seed)
    train_maker = mk(train_frames, cfg.run.batch_size, 0)
    valid_maker = mk(valid_frames, cfg.run.batch_size, 1)
    tx = make_optimizer(cfg.optim.optimizer, cfg.optim.clip_norm)
    k = cfg.run.ensemble
    if k < 1:
        raise ValueError(f"run.ensemble must be >= 1, got {k}")
    shards = cfg.run.shards
    steps = Steps(mconfig, cfg.loss, tx, cfg.optim.ema_decay, ensemble=k if k > 1 else 0, shards=shards)
    mesh = mesh_for(shards, cfg.run.devices) if shards > 1 else None
    init_seed = cfg.run.seed if cfg.run.init_seed is None else cfg.run.init_seed
    params = [init_params(mconfig, init_seed + m, dtype) for m in range(k)]
    state = steps.init_state(params if k > 1 else params[0])
    meta = {"epoch": 0, "best_valid": None, "bad_epochs": 0, "plateau_scale": 1.0, "plateau_bad": 0, "metrics": []}
    mngr = _checkpointer(out, cfg.run.keep_checkpoints)
    if resume:
        restored = _restore_checkpoint(mngr, state)
        if restored is not None:
            state, meta = restored
            log(f"resumed {out} at epoch {meta['epoch']}")
    boot = None
    if cfg.run.bootstrap:
        if k < 2:
            raise ValueError("run.bootstrap needs an ensemble (run.ensemble >= 2)")
        n = len(train_frames)
        boot = np.random.default_rng([cfg.run.seed, 7]).multinomial(n, np.full(n, 1.0 / n), size=k)  # (K, n)
    elif k > 1:
        boot = np.ones((k, len(train_frames)))

    def wrap(p):  # parameters -> the model file's object
        return EnsemblePotential(mconfig, p) if k > 1 else Potential(mconfig, p)

    n_batches = len(_step_batches(train_maker, splits["train"], shards))
    schedule = _Schedule(cfg.optim, cfg.run.epochs * n_batches)
    log(f"{len(train_frames)} train / {len(splits['valid'])} valid / {len(splits['test'])} test frames; "
        f"{'LR' if mconfig.long_range else 'SR'} model{f' x {k} (ensemble)' if k > 1 else ''}, "
        f"{sum(np.size(p) for p in jax.tree_util.tree_leaves(params[0])):,} parameters each; "
        f"{len(train_maker.plan)} batch capacities")
    t_start = time.perf_counter()
    bar = _progress(cfg, meta["epoch"])
    best_params = None
    for epoch in range(meta["epoch"], cfg.run.epochs):
        order = np.random.default_rng([cfg.run.seed, epoch]).permutation(len(train_frames))
        losses = []
        for idx in _step_batches(train_maker, order, shards):
            g, t = _make(train_maker, idx, shards, mesh)
            lr = schedule(int(np.max(np.asarray(state.step))), meta["plateau_scale"])
            extra = () if boot is None else (_bootstrap_weights(boot, idx, g, dtype),)
            state, loss, _ = steps.train(state, g, t, jnp.asarray(lr, dtype), *extra)
            losses.append(float(jnp.mean(loss)))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"training loss became {losses[-1]} at epoch {epoch}; lower optim.lr")
        valid_loss, valid = _evaluate(steps, state.ema, valid_maker)
        row = {"epoch": epoch + 1, "step": int(np.max(np.asarray(state.step))), "lr": lr, "train_loss": float(np.mean(losses)),
               "valid_loss": valid_loss, **{f"valid_{k}": v for k, v in valid.items()},
               "time_s": round(time.perf_counter() - t_start, 2), "compiles": dict(steps.compiles)}
        meta["metrics"].append(row)
        if primary:
            with open(os.path.join(out, "metrics.jsonl"), "a") as fh:
                fh.write(json.dumps(row) + "\n")
        improved = meta["best_valid"] is None or valid_loss < meta["best_valid"]
        if improved:
            meta["best_valid"], meta["bad_epochs"], meta["plateau_bad"] = valid_loss, 0, 0
            best_params = jax.tree_util.tree_map(np.array, state.ema)  # a copy: the step donates its state
            if primary:
                save(os.path.join(out, "best.eqlr"), wrap(best_params))
        else:
            meta["bad_epochs"] += 1
            meta["plateau_bad"] += 1
            if cfg.optim.schedule == "plateau" and meta["plateau_bad"] >= cfg.optim.plateau_patience:
                meta["plateau_scale"] *= cfg.optim.plateau_factor
                meta["plateau_bad"] = 0
        meta["epoch"] = epoch + 1
        if (epoch + 1) % cfg.run.checkpoint_every == 0 or epoch + 1 == cfg.run.epochs:
            _save_checkpoint(mngr, epoch + 1, state, meta)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"loss": f"{row['train_loss']:.3g}",
                             **{k.replace("valid_", "v_"): f"{v:.3g}" for k, v in row.items()
                                if k.startswith("valid_") and k.endswith("rmse")}})
        patience = cfg.run.early_stopping_patience
        if patience is not None and meta["bad_epochs"] >= patience:
            log(f"early stop at epoch {epoch + 1}: no validation improvement for {patience} epochs")
            break
        if cfg.run.max_minutes is not None and time.perf_counter() - t_start > 60.0 * cfg.run.max_minutes:
            log(f"stopped after {cfg.run.max_minutes} minutes at epoch {epoch + 1}")
            if (epoch + 1) % cfg.run.checkpoint_every:
                _save_checkpoint(mngr, epoch + 1, state, meta)
            break
    if bar is not None:
        bar.close()
    if primary:
        save(os.path.join(out, "final.eqlr"), wrap(jax.tree_util.tree_map(np.asarray, state.ema)))
        _learning_curve(meta["metrics"], os.path.join(out, "learning_curve.png"))
    test = [frames[i] for i in splits["test"]]
    if primary and test and cfg.run.test_at_end:
        from .evaluate import metrics, predictions

        best_model = wrap(best_params) if best_params is not None else None
        if best_model is not None:
            result = metrics(predictions(best_model, test, cfg.run.batch_size, dtype))
            with open(os.path.join(out, "test_metrics.json"), "w") as fh:
                json.dump(result, fh, indent=1)
            log("test split: " + ", ".join(f"{k} RMSE {v['rmse']:.3g} {v['unit']}" for k, v in result.items()))
    if best_params is None:  # a resumed run that did not improve: the best model is on disk
        from ..io import load

        best = load(os.path.join(out, "best.eqlr"))
    else:
        best = wrap(best_params)
    return Run(best, meta["metrics"], splits, dict(steps.compiles), out)


def _progress(cfg: TrainConfig, start: int):
    if not cfg.run.progress:
        return None
    from tqdm.auto import tqdm

    # a run limited by time has no meaningful epoch total: count epochs and show their rate
    total = None if cfg.run.max_minutes is not None else cfg.run.epochs
    return tqdm(total=total, initial=start, desc="epochs", unit="epoch", mininterval=0.5)


def _learning_curve(metrics: list, path: str) -> None:
    """Training loss and validation RMSEs against the epoch, log scale."""
    if not metrics:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [m["train_loss"] for m in metrics], label="train loss")
    for key, unit in (("valid_energy_rmse", "meV/atom"), ("valid_forces_rmse", "meV/Å"), ("valid_charges_rmse", "me")):
        if key in metrics[0]:
            ax.plot(epochs, [m[key] for m in metrics], label=f"{key.replace('valid_', 'valid ').replace('_rmse', ' RMSE')} ({unit})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
