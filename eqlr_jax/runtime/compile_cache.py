"""Opt-in persistent compilation cache: a later process loads compiled programs from disk.

The first call of a model compiles it, which takes seconds on a CPU. With the cache on, XLA's
compiled program is also written to disk, and a new process with the same model, capacities,
dtype, XLA flags and JAX version loads it instead; tracing and lowering are not cached, so the
first call still takes a little time (figures: README.md, "Python API";
``benchmarks/archive/bench_compile_cache.py``). Results are unchanged.

This sets JAX's global ``jax_compilation_cache_dir``, so the library never turns it on by
itself: call :func:`enable_compilation_cache` in your script (the ``eqlr-jax`` command line does,
unless ``--no-compile-cache``). JAX treats the cache as trusted code: keep it in a directory
only you can write to (the default is in your own cache directory).
"""
from __future__ import annotations

import importlib.util
import os
import stat

__all__ = ["enable_compilation_cache", "default_cache_dir"]


def default_cache_dir() -> str:
    """``$EQLR_JAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/eqlr_jax/xla``, else ``~/.cache/eqlr_jax/xla``."""
    explicit = os.environ.get("EQLR_JAX_CACHE_DIR")
    if explicit:
        return os.path.expanduser(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "eqlr_jax", "xla")


def _check_private(path: str) -> None:
    """JAX runs what it loads from the cache: refuse a directory another user could write to."""
    st = os.stat(path)
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        raise OSError(f"the compilation cache directory {path!r} belongs to another user (uid {st.st_uid}); "
                      "JAX trusts what it loads from there: use a directory of your own")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OSError(f"the compilation cache directory {path!r} is writable by other users (mode "
                      f"{stat.S_IMODE(st.st_mode):o}); JAX trusts what it loads from there: chmod go-w it "
                      "or use another directory")


def enable_compilation_cache(path: str | os.PathLike | None = None, min_compile_time_s: float = 1.0,
                             max_size_mb: float | None = None) -> str:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`default_cache_dir`).

    Args:
        path: cache directory; created (mode 0o700) if missing. It must belong to you and not
            be writable by others (JAX loads executable code from it).
        min_compile_time_s: only programs that took at least this long to compile are stored
            (the models' programs take seconds; small helper programs are not worth a file).
            This sets JAX's global ``jax_persistent_cache_min_compile_time_secs``.
        max_size_mb: keep at most about this many MB, dropping the least recently used
            programs (JAX needs the ``filelock`` package for this); ``None`` (default): no
            limit. A model's program takes a few hundred kB; delete the directory to clear it.

    Returns:
        The cache directory.

    Works before or after other JAX computations, and when called again with another
    directory: JAX's cache is set up anew. Raises ``OSError`` (with the path) if the directory
    cannot be created or written, or is not private. A program is loaded only by a process
    with the same model, capacities, dtype, ``compute_stress``, JAX version, ``XLA_FLAGS`` and
    CPU kind; to clear the cache, delete the directory.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    path = os.path.abspath(os.path.expanduser(os.fspath(path)) if path is not None else default_cache_dir())
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the compilation cache directory {path!r}: {exc}") from exc
    if not os.access(path, os.W_OK):
        raise OSError(f"the compilation cache directory {path!r} is not writable")
    _check_private(path)
    if max_size_mb is not None and importlib.util.find_spec("filelock") is None:
        raise ImportError("max_size_mb needs the filelock package (pip install filelock)")
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_compilation_cache_max_size", -1 if max_size_mb is None else int(max_size_mb * 2**20))
    # JAX decides once per process whether, and where, it caches (at the first compile after
    # start or after a reset): reset, so that this call takes effect whatever happened before.
    compilation_cache.reset_cache()
    return path
