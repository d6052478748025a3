"""Shared test helpers (structures)."""
import numpy as np

import eqlr_jax


def random_triclinic(seed=0, n=5, scale=3.2, species=(11, 17, 19)):
    """A small, strongly skewed periodic cell whose widths are below 2 * r_max."""
    rng = np.random.default_rng(seed)
    cell = scale * (np.eye(3) + 0.25 * rng.standard_normal((3, 3)))
    frac = rng.random((n, 3))
    pos = frac @ cell
    numbers = rng.choice(species, n)
    return eqlr_jax.Structure(positions=pos, numbers=numbers, cell=cell, pbc=True)


def fd_grad(f, x, h=1e-5):
    """Central finite differences of the scalar ``f`` at ``x`` (any shape), float64."""
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (float(f(xp)) - float(f(xm))) / (2 * h)
    return g


def write_rattled_nacl(tmp_path, total_charge: float, name: str = "nacl.xyz"):
    """The 8-atom rocksalt NaCl cubic cell (5.64 Å: below 2 r_max of the MD tests' models),
    rattled by 0.05 Å, written as extxyz with its total charge (e); returns the path."""
    import ase.build
    import ase.io

    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(0.05, seed=0)
    atoms.info["total_charge"] = total_charge
    path = tmp_path / name
    ase.io.write(path, atoms, format="extxyz")
    return path
