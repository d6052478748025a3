"""eqlr_jax: equivariant interatomic potentials with global charge redistribution, in JAX.

Quick use::

    import eqlr_jax
    pot = eqlr_jax.load("model.eqlr")          # or eqlr_jax.Potential.init(eqlr_jax.NequIPConfig(...))
    atoms.calc = pot.calculator()              # ASE: energy (eV), forces (eV/Å), stress (eV/Å^3)

Units throughout: eV, Å, e, eV/Å, eV/Å^3. jax-md is imported lazily (only by ``eqlr_jax.jax_md``).
"""
from ._version import __version__
from .runtime import xla as _xla

_xla.apply()  # before JAX creates its backends; see eqlr_jax/runtime/xla.py

from .errors import CapacityError  # noqa: E402
from .graph import Capacity, Graph, build_graph  # noqa: E402
from .io import load, save  # noqa: E402
from .models import LRConfig  # noqa: E402
from .nn import NequIPConfig  # noqa: E402
from .potential import Potential  # noqa: E402
from .qeq import QEqConvergenceError  # noqa: E402
from .runtime import Runtime, enable_compilation_cache  # noqa: E402
from .structure import Structure  # noqa: E402


def __getattr__(name):
    # ase.calculators is only imported when the calculator is asked for
    if name == "Calculator":
        from .calculator import Calculator

        return Calculator
    raise AttributeError(f"module 'eqlr_jax' has no attribute {name!r}")


__all__ = ["Calculator", "Capacity", "CapacityError", "Graph", "LRConfig", "NequIPConfig", "QEqConvergenceError", "Potential", "Runtime", "Structure",
           "build_graph", "enable_compilation_cache", "load", "save", "__version__"]
