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
from .nn import NequIPConfig
from .potential import Potential

__all__ = ["save", "load", "FORMAT_VERSION", "ModelFileError"]

FORMAT_VERSION = 1
_MAGIC = "eqlr_jax-model"


class ModelFileError(ValueError):
    """The file is not a readable eqlr_jax model (truncated, corrupt, or from a newer format)."""


def save(path: str | os.PathLike, potential: Potential) -> None:
    """Write ``potential`` to ``path`` (conventionally ``*.eqlr``). Written atomically: a crash
    mid-write leaves any previous file intact."""
    meta = {"magic": _MAGIC, "format_version": FORMAT_VERSION, "eqlr_jax_version": __version__,
            "model": "nequip-sr", "config": potential.config.to_dict()}
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
    if meta.get("model") != "nequip-sr":
        raise ModelFileError(f"{path}: unknown model kind {meta.get('model')!r}")
    config = NequIPConfig.from_dict(meta["config"])
    try:
        state = flax.serialization.msgpack_restore(blob)
    except Exception as e:  # msgpack raises several types on truncated data
        raise ModelFileError(f"{path}: parameters are unreadable (truncated or corrupt?): {e}") from e
    params = jax.tree_util.tree_map(np.asarray, state)
    return Potential(config, params)
