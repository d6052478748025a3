"""XLA:CPU compile-time tuning, applied when eqlr_jax is imported.

LLVM fully unrolls short constant-trip-count loops. XLA:CPU emits an elementwise kernel over an
(N, 32) array (32 channels, the usual feature width) as a loop over rows around a loop of 32;
LLVM unrolls the inner loop and then vectorises the row loop, which makes even small kernels
slow to compile. Capping full unrolling at 8 iterations cuts the LLVM time of the model's call
and leaves its run time unchanged (figures: README.md, "Performance against PyTorch NequIP (CPU)";
``EQLR_JAX_XLA_TUNING=0 python benchmarks/archive/compile_kernels.py`` measures it without the cap).

The option is passed through ``XLA_FLAGS`` (``--xla_backend_extra_options``), which XLA reads once,
when JAX creates its backends: importing eqlr_jax before the first JAX computation applies it, and
it then holds for the whole process. It is left out when

- ``EQLR_JAX_XLA_TUNING=0`` is set,
- ``XLA_FLAGS`` already passes ``--xla_backend_extra_options`` (the user's own LLVM options win),
- a JAX GPU/TPU plugin is installed and ``JAX_PLATFORMS`` is not ``cpu`` (the option would also
  reach the GPU compiler's LLVM, where it has not been measured).
"""
from __future__ import annotations

import importlib.util
import os
import pkgutil

UNROLL_OPTION = "--xla_backend_extra_options=-unroll-full-max-count=8"


def _accelerator_plugins() -> list[str]:
    spec = importlib.util.find_spec("jax_plugins")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [m.name for m in pkgutil.iter_modules(list(spec.submodule_search_locations))]


def xla_flags_with_tuning(environ) -> str | None:
    """The ``XLA_FLAGS`` value eqlr_jax sets for ``environ``, or None to leave it alone."""
    flags = environ.get("XLA_FLAGS", "")
    if environ.get("EQLR_JAX_XLA_TUNING", "1") == "0" or "xla_backend_extra_options" in flags:
        return None
    if environ.get("JAX_PLATFORMS", "").strip().lower() != "cpu" and _accelerator_plugins():
        return None
    return (flags + " " + UNROLL_OPTION).strip()


def apply() -> bool:
    """Add the tuning to ``os.environ["XLA_FLAGS"]``; True if it was added."""
    flags = xla_flags_with_tuning(os.environ)
    if flags is None:
        return False
    os.environ["XLA_FLAGS"] = flags
    return True
