"""Per-element reference values of the long-range model (host-side tables)."""
from __future__ import annotations

from typing import Sequence

__all__ = ["PAULING", "covalent_radii", "pauling_electronegativities"]

#: Pauling electronegativities (dimensionless; used as χ references in eV/e, as in the
#: NequIP-LR authors' bounded variant). Noble gases without a value are absent.
PAULING = {
    1: 2.20, 3: 0.98, 4: 1.57, 5: 2.04, 6: 2.55, 7: 3.04, 8: 3.44, 9: 3.98,
    11: 0.93, 12: 1.31, 13: 1.61, 14: 1.90, 15: 2.19, 16: 2.58, 17: 3.16,
    19: 0.82, 20: 1.00, 21: 1.36, 22: 1.54, 23: 1.63, 24: 1.66, 25: 1.55, 26: 1.83, 27: 1.88,
    28: 1.91, 29: 1.90, 30: 1.65, 31: 1.81, 32: 2.01, 33: 2.18, 34: 2.55, 35: 2.96, 36: 3.00,
    37: 0.82, 38: 0.95, 39: 1.22, 40: 1.33, 41: 1.6, 42: 2.16, 44: 2.2, 45: 2.28, 46: 2.20,
    47: 1.93, 48: 1.69, 49: 1.78, 50: 1.96, 51: 2.05, 52: 2.1, 53: 2.66, 54: 2.6,
    55: 0.79, 56: 0.89, 57: 1.10, 72: 1.3, 73: 1.5, 74: 2.36, 76: 2.2, 77: 2.20, 78: 2.28,
    79: 2.54, 80: 2.00, 81: 1.62, 82: 2.33, 83: 2.02,
}


def pauling_electronegativities(species: Sequence[int]) -> tuple[float, ...]:
    """Pauling χ of each atomic number; ValueError for an element without one."""
    from ase.data import chemical_symbols

    missing = [chemical_symbols[z] for z in species if z not in PAULING]
    if missing:
        raise ValueError(f"no Pauling electronegativity for {', '.join(missing)}: pass chi_reference"
                         " (eV/e, one value per species) in the config")
    return tuple(PAULING[z] for z in species)


def covalent_radii(species: Sequence[int]) -> tuple[float, ...]:
    """ASE's covalent radii (Cordero et al. 2008), Å: the default Gaussian widths σ."""
    from ase.data import covalent_radii as radii

    return tuple(float(radii[z]) for z in species)
