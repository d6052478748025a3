"""One model evaluation for the physics checks: energy, forces and charges of one structure."""
from __future__ import annotations

import numpy as np


def outputs(pot, structure) -> dict:
    """``energy`` (eV), ``forces`` (N, 3) eV/Å and ``charges`` (N,) e (None for a short-range
    model) of one :class:`eqlr_jax.Structure`, as float64 NumPy."""
    g, _ = pot.graph(structure)
    out = pot(g, compute_stress=False)
    n = structure.n_atoms
    return {"energy": float(out["energy"][0]), "forces": np.asarray(out["forces"][:n], np.float64),
            "charges": np.asarray(out["charges"][:n], np.float64) if "charges" in out else None}


def atoms_outputs(pot, atoms, total_charge: float, periodic: bool) -> dict:
    """:func:`outputs` of ASE atoms: open boundaries, or periodic in its cell."""
    import eqlr_jax

    cell = np.asarray(atoms.cell) if periodic else np.zeros((3, 3))
    return outputs(pot, eqlr_jax.Structure(numbers=atoms.numbers, positions=atoms.positions, cell=cell,
                                           pbc=np.full(3, periodic), total_charge=float(total_charge)))
