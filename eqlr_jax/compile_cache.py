"""Opt-in persistent compilation cache: a later process loads compiled programs from disk.

The first call of a model compiles it (about 6-10 s on a CPU for 1000 atoms, see the README's
performance section). With the cache on, XLA's compiled program is also written to disk, and a
new process with the same model, capacities, dtype, XLA flags and JAX version loads it instead:
on this project's 2-core VM the first energy + forces + stress call at 1000 atoms (1 thread) took
9.8 s in the first process and 1.9-2.4 s in the next ones (``benchmarks/bench_compile_cache.py``;
tracing and lowering are not cached). Results are unchanged.

This sets JAX's global ``jax_compilation_cache_dir``, so the library never turns it on by
itself: call :func:`enable_compilation_cache` in your script (the ``eqlr-jax`` command line does,
unless ``--no-compile-cache``). JAX treats the cache as trusted code: keep it in a directory
only you can write to (the default is in your own cache directory).
"""
from __future__ import annotations

import os

__all__ = ["enable_compilation_cache", "default_cache_dir"]


def default_cache_dir() -> str:
    """``$EQLR_JAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/eqlr_jax/xla`` (``~/.cache/eqlr_jax/xla``)."""
    explicit = os.environ.get("EQLR_JAX_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "eqlr_jax", "xla")


def enable_compilation_cache(path: str | os.PathLike | None = None, min_compile_time_s: float = 1.0) -> str:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`default_cache_dir`).

    Args:
        path: cache directory; created (mode 0o700) if missing.
        min_compile_time_s: only programs that took at least this long to compile are stored
            (the models' programs take seconds; small helper programs are not worth a file).

    Returns:
        The cache directory.

    Call it before the first model call; it also works after other JAX computations. Raises
    ``OSError`` (with the path) if the directory cannot be created or written.
    """
    import jax

    path = os.path.abspath(os.fspath(path) if path is not None else default_cache_dir())
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the compilation cache directory {path!r}: {exc}") from exc
    if not os.access(path, os.W_OK):
        raise OSError(f"the compilation cache directory {path!r} is not writable")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    return path
