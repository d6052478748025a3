"""Typed training configuration: YAML sections, ``section.key=value`` overrides, unknown keys an error.

A config file has the sections ``data``, ``model``, ``loss``, ``optim`` and ``run``. Every key
is documented in ``eqlr-jax train --help`` (generated from the fields below).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..models import LRConfig
from .loss import LossWeights

__all__ = ["DataSection", "OptimSection", "RunSection", "TrainConfig", "ConfigError", "load_config",
           "help_text"]


class ConfigError(ValueError):
    """A training configuration is invalid (the message names the key)."""


def _f(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class DataSection:
    path: str | tuple = _f("", "dataset file (extended XYZ, also .xyz.gz, or ASE database), or a list of files")
    format: str | None = _f(None, "ase.io format (default: from the file name)")
    energy_key: str | None = _f("energy", "key of the energy (eV): ASE results, then info, then arrays")
    forces_key: str | None = _f("forces", "key of the forces (eV/Å); SPICE: force")
    stress_key: str | None = _f("stress", "key of the stress (eV/Å³, ASE sign; periodic frames)")
    charges_key: str | None = _f("charges", "key of reference atomic charges (e); SPICE: mbi_charges")
    dipole_key: str | None = _f("dipole", "key of the dipole (e·Å; non-periodic frames)")
    total_charge_key: str | None = _f("total_charge", "key of the total charge (e) in info")
    valid_fraction: float = _f(0.1, "fraction of frames for validation")
    test_fraction: float = _f(0.1, "fraction of frames held out for the test")
    split_seed: int = _f(0, "seed of the train/valid/test split")
    max_frames: int | None = _f(None, "use only the first max_frames frames")
    n_train: int | None = _f(None, "use at most this many training frames, a seeded random subset (learning curves)")


@dataclasses.dataclass(frozen=True)
class OptimSection:
    optimizer: str = _f("amsgrad", "adam or amsgrad")
    lr: float = _f(5e-3, "peak learning rate")
    warmup_steps: int = _f(0, "linear warm-up steps")
    schedule: str = _f("plateau", "after warm-up: plateau (reduce on validation plateau), cosine or constant")
    plateau_patience: int = _f(10, "epochs without validation improvement before the learning rate drops")
    plateau_factor: float = _f(0.5, "factor of each plateau drop")
    min_lr: float = _f(1e-5, "learning-rate floor")
    clip_norm: float | None = _f(10.0, "clip gradients to this global norm (None: no clipping)")
    ema_decay: float = _f(0.99, "EMA of the parameters, used for evaluation and export (0: off)")


@dataclasses.dataclass(frozen=True)
class RunSection:
    out_dir: str = _f("runs/run", "output directory (checkpoints, metrics, plots, model files)")
    epochs: int = _f(100, "maximum number of epochs")
    max_minutes: float | None = _f(None, "stop after this wall-clock time (minutes)")
    batch_size: int = _f(8, "structures per batch")
    seed: int = _f(0, "seed of the data order (and of the initial parameters unless init_seed is set)")
    init_seed: int | None = _f(None, "seed of the initial parameters (default: seed); ensemble member k uses init_seed + k")
    ensemble: int = _f(1, "train this many models at once (vmap), differing by their initial parameters")
    bootstrap: bool = _f(False, "ensemble members train on bootstrap resamples of the training set (counts as weights)")
    shards: int = _f(1, "sub-batches per step, each of batch_size structures, spread over the devices (data parallel)")
    devices: int | None = _f(None, "devices to spread the shards over (None: as many visible devices as divide shards)")
    distributed: bool = _f(False, "multi-host: call jax.distributed.initialize() first (SLURM and Open MPI are detected)")
    dtype: str = _f("float32", "float32 or float64 (float64 needs jax_enable_x64)")
    checkpoint_every: int = _f(1, "checkpoint every this many epochs")
    keep_checkpoints: int = _f(2, "checkpoints kept on disk")
    early_stopping_patience: int | None = _f(50, "stop after this many epochs without validation improvement")
    capacity_levels: int = _f(3, "padded batch sizes per split (bounds the compiles per epoch)")
    resume: bool = _f(False, "continue the run in out_dir from its last checkpoint")
    overwrite: bool = _f(False, "replace a run already in out_dir")
    progress: bool = _f(True, "show a progress bar")
    test_at_end: bool = _f(True, "evaluate the best model on the test split at the end (test_metrics.json)")


_MODEL_AUTO = ("species", "avg_num_neighbors", "species_shift", "species_scale")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The whole configuration. ``model`` holds :class:`~eqlr_jax.LRConfig` fields plus
    ``kind`` (``lr`` or ``sr``); ``species``, ``avg_num_neighbors``, ``species_shift`` (per-species
    reference energies) and ``species_scale`` (force RMS) default to ``auto``: from the data."""

    data: DataSection = DataSection()
    model: tuple = ()
    loss: LossWeights = LossWeights()
    optim: OptimSection = OptimSection()
    run: RunSection = RunSection()

    def model_dict(self) -> dict:
        return dict(self.model)

    def to_dict(self) -> dict:
        return {"data": dataclasses.asdict(self.data), "model": self.model_dict(),
                "loss": dataclasses.asdict(self.loss), "optim": dataclasses.asdict(self.optim),
                "run": dataclasses.asdict(self.run)}


_SECTIONS = {"data": DataSection, "loss": LossWeights, "optim": OptimSection, "run": RunSection}


def _typed(cls, name, value, where):
    """``value`` checked against the field's annotation (ints are floats; lists are tuples)."""
    ann = str(next(f.type for f in dataclasses.fields(cls) if f.name == name))
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if "None" in ann:
            return None
        raise ConfigError(f"{where}: {name} may not be None")
    base = ann.split("|")[0].strip()
    if base == "float" and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "bool" and isinstance(value, bool):
        return value
    if base == "str" and isinstance(value, str):
        return value
    if "tuple" in ann and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: {name} must be {ann}, got {value!r}")


def _section(cls, d: dict, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {d!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**{k: _typed(cls, k, v, where) for k, v in d.items()})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def _model(d: dict, where: str) -> tuple:
    known = {f.name for f in dataclasses.fields(LRConfig)} | {"kind"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown model keys {unknown}; known: {sorted(known)}")
    if d.get("kind", "lr") not in ("lr", "sr"):
        raise ConfigError(f"{where}: model.kind must be lr or sr, got {d['kind']!r}")
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


def _parse_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_config(path: str | os.PathLike | None = None, overrides=(), base: dict | None = None) -> TrainConfig:
    """Read a YAML config (or ``base``), apply ``section.key=value`` overrides, validate.

    Raises:
        ConfigError: unknown sections or keys, wrong types, malformed overrides.
        FileNotFoundError: no such config file.
    """
    import yaml

    raw: dict[str, Any] = {} if base is None else {k: dict(v) for k, v in base.items()}
    where = "config"
    if path is not None:
        where = os.fspath(path)
        if not os.path.exists(where):
            raise FileNotFoundError(f"config not found: {where}")
        with open(where) as fh:
            loaded = yaml.safe_load(fh) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{where}: expected sections {sorted(_SECTIONS) + ['model']}, got {type(loaded).__name__}")
        for k, v in loaded.items():
            raw.setdefault(k, {}).update(v or {})
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=1e-3)")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        raw.setdefault(section, {})[name] = _parse_value(value)
    unknown = sorted(set(raw) - set(_SECTIONS) - {"model"})
    if unknown:
        raise ConfigError(f"{where}: unknown sections {unknown}; known: {sorted(_SECTIONS) + ['model']}")
    kw = {name: _section(cls, raw.get(name, {}), f"{where} [{name}]") for name, cls in _SECTIONS.items()}
    cfg = TrainConfig(model=_model(raw.get("model", {}), f"{where} [model]"), **kw)
    if not cfg.data.path:
        raise ConfigError(f"{where}: data.path is required")
    if cfg.optim.optimizer not in ("adam", "amsgrad"):
        raise ConfigError(f"{where}: optim.optimizer must be adam or amsgrad, got {cfg.optim.optimizer!r}")
    if cfg.optim.schedule not in ("plateau", "cosine", "constant"):
        raise ConfigError(f"{where}: optim.schedule must be plateau, cosine or constant")
    if cfg.run.dtype not in ("float32", "float64"):
        raise ConfigError(f"{where}: run.dtype must be float32 or float64")
    return cfg


def help_text() -> str:
    """Every option of every section, with its default and meaning (for ``--help``)."""
    lines = ["configuration keys (YAML sections, or section.key=value on the command line):"]
    for name, cls in _SECTIONS.items():
        lines.append(f"  [{name}]")
        for f in dataclasses.fields(cls):
            doc = f.metadata.get("help", "")
            if not doc and cls is LossWeights:
                doc = ("penalty: mse or huber" if f.name == "kind" else "Huber delta, in each term's units"
                       if f.name == "huber_delta" else f"weight of the {f.name} term")
            lines.append(f"    {f.name} = {f.default!r}: {doc}")
    lines.append("  [model]  kind = 'lr' (or 'sr'), and any eqlr_jax.LRConfig field:")
    for f in dataclasses.fields(LRConfig):
        default = "auto (from the data)" if f.name in _MODEL_AUTO else repr(f.default)
        lines.append(f"    {f.name} = {default}")
    lines.append("  (see help(eqlr_jax.LRConfig) for the meaning of each model field)")
    return "\n".join(lines)
