"""Tiny synthetic datasets for the training tests, written on the fly (deterministic).

Energies and forces come from a smooth pair potential plus point-charge Coulomb with fixed
charges, so a model can fit them; each frame carries reference charges and a total charge.
"""
import ase
import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator


def pair_energy_forces(pos, numbers, q):
    """Morse-like pair term plus 14.4 q_i q_j / r (eV, eV/Å) for a molecule."""
    n = len(pos)
    e = 0.0
    f = np.zeros_like(pos)
    for i in range(n):
        for j in range(i + 1, n):
            d = pos[j] - pos[i]
            r = np.linalg.norm(d)
            r0 = 1.1 + 0.1 * ((numbers[i] + numbers[j]) % 3)
            x = np.exp(-1.5 * (r - r0))
            ee = 0.8 * (x * x - 2 * x) + 14.4 * q[i] * q[j] / r * np.exp(-r / 6.0)
            de = 0.8 * (-3.0 * x * x + 3.0 * x) + 14.4 * q[i] * q[j] * np.exp(-r / 6.0) * (-1 / r**2 - 1 / (6 * r))
            e += ee
            f[i] += de * d / r
            f[j] -= de * d / r
    return e, f


def molecules(n_frames=12, seed=0, n_atoms=(3, 5), coulomb=True):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_frames):
        n = int(rng.integers(n_atoms[0], n_atoms[1] + 1))
        numbers = rng.choice([1, 6, 8], n)
        pos = np.cumsum(rng.normal(0, 0.25, (n, 3)) + [1.15, 0, 0], axis=0)
        q_tot = float(k % 2)
        q = rng.normal(0, 0.1, n)
        q += (q_tot - q.sum()) / n
        e, f = pair_energy_forces(pos, numbers, q if coulomb else np.zeros(n))
        atoms = ase.Atoms(numbers=numbers, positions=pos)
        atoms.info["total_charge"] = q_tot
        atoms.calc = SinglePointCalculator(atoms, energy=e - 3.0 * n, forces=f, charges=q, dipole=q @ pos)
        frames.append(atoms)
    return frames


def write(path, frames):
    ase.io.write(path, frames, format="extxyz")
    return str(path)
