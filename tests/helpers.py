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
