"""Neural networks (Flax + e3nn-jax). Knows nothing of ASE or jax-md: it sees edge vectors,
species indices and edge indices only."""
from .config import NequIPConfig
from .nequip import NequIP

__all__ = ["NequIP", "NequIPConfig"]
