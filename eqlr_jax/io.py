"""Self-describing model files: one zip archive with ``meta.json`` (format version, model kind,
config) and ``params.msgpack`` (flax serialisation, dtypes kept), so save/load round-trip bit
for bit."""
from __future__ import annotations

import json
import os
import zipfile

import flax.serialization
import jax
import numpy as np

from ._version import __version__
from .ensemble import EnsemblePotential
from .models import LRConfig
from .nn import NequIPConfig
from .potential import Potential

__all__ = ["save", "load", "FORMAT_VERSION", "ModelFileError"]

#: 1: short-range models only (kind "nequip-sr"); 2: adds the long-range kind "nequip-lr";
#: 3: adds ensembles (``"ensemble": K`` in meta.json, parameters stacked along a leading axis).
FORMAT_VERSION = 3
_MAGIC = "eqlr_jax-model"
#: model kind -> config class
_KINDS = {"nequip-sr": NequIPConfig, "nequip-lr": LRConfig}


class ModelFileError(ValueError):
    """The file is not a readable eqlr_jax model (truncated, corrupt, or from a newer format)."""


def save(path: str | os.PathLike, potential: Potential | EnsemblePotential) -> None:
    """Write ``potential`` to ``path`` (conventionally ``*.eqlr``). Written atomically: a crash
    mid-write leaves any previous file intact."""
    kind = next(k for k, cls in _KINDS.items() if isinstance(potential.config, cls))
    meta = {"magic": _MAGIC, "format_version": FORMAT_VERSION, "eqlr_jax_version": __version__,
            "model": kind, "config": potential.config.to_dict()}
    if isinstance(potential, EnsemblePotential):
        meta["ensemble"] = potential.size
    params = jax.tree_util.tree_map(np.asarray, potential.params)
    blob = flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(params))
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("meta.json", json.dumps(meta, indent=1))
        z.writestr("params.msgpack", blob)
    os.replace(tmp, path)


def load(path: str | os.PathLike) -> Potential:
    """Read a model written by :func:`save`.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: truncated or corrupt file, not a model file, or a newer format version.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("meta.json"))
            blob = z.read("params.msgpack")
    except (zipfile.BadZipFile, KeyError, EOFError, json.JSONDecodeError, zipfile.LargeZipFile) as e:
        raise ModelFileError(f"{path} is not a readable eqlr_jax model file (truncated or corrupt?): {e}") from e
    if meta.get("magic") != _MAGIC:
        raise ModelFileError(f"{path} is not an eqlr_jax model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format version {version}, newer than this eqlr_jax supports "
            f"({FORMAT_VERSION}); upgrade eqlr_jax to read it")
    kind = meta.get("model")
    if kind not in _KINDS or (version < 2 and kind != "nequip-sr"):
        raise ModelFileError(f"{path}: unknown model kind {kind!r} for format version {version}")
    config = _KINDS[kind].from_dict(meta["config"])
    try:
        state = flax.serialization.msgpack_restore(blob)
    except Exception as e:  # msgpack raises several types on truncated data
        raise ModelFileError(f"{path}: parameters are unreadable (truncated or corrupt?): {e}") from e
    params = jax.tree_util.tree_map(np.asarray, state)
    if meta.get("ensemble"):
        return EnsemblePotential(config, params)
    return Potential(config, params)
