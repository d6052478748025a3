"""Convenience functions for fixed-charge electrostatics (host entry points, not jit-able).

``coulomb_energy``, ``coulomb_potential`` and ``coulomb_matrix`` validate their input, choose
the Ewald parameters for the requested accuracy (periodic cells) and call the jit-compiled
kernels. They return NumPy values. To differentiate (forces, stress) or to jit a whole model,
use the pure functions directly::

    setup = prepare_ewald(cell, n_atoms, sigmas, accuracy)   # host, once
    data = setup.build(positions)                            # host, per neighbour update
    e = ewald_energy(positions, cell, sigmas, q, data)       # jit / grad / vmap

Units: positions and cell in Å (cell rows are lattice vectors), charges in e, sigmas (the
Gaussian widths, 0 = point charge) in Å, energies in eV, potentials in eV/e, M in eV/e².
The computation runs in float64 when ``jax_enable_x64`` is on, otherwise in float32
(relative error ~1e-6, whatever the requested accuracy).
"""

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .constants import CONVENIENCE_ACCURACY
from .coulomb import open_energy, open_matrix, open_potential
from .ewald import ewald_energy, ewald_matrix, ewald_potential
from .ewald_setup import prepare_ewald
from .validation import check_accuracy, check_cell, check_charges, check_positions, check_sigmas

_ewald_energy = jax.jit(ewald_energy)
_ewald_potential = jax.jit(ewald_potential)
_ewald_matrix = jax.jit(ewald_matrix)
_open_energy = jax.jit(open_energy)
_open_potential = jax.jit(open_potential)
_open_matrix = jax.jit(open_matrix)


def _inputs(positions, sigmas, cell, accuracy, slab_axis):
    for name, x in (("positions", positions), ("cell", cell), ("sigmas", sigmas)):
        if isinstance(x, jax.core.Tracer):
            raise TypeError(
                f"{name} is a JAX tracer: coulomb_energy/coulomb_matrix are host functions. Under"
                " jit/grad use prepare_ewald(...).build(...) and ewald_energy (or open_energy)")
    pos = check_positions(positions)
    sig = check_sigmas(sigmas, pos.shape[0])
    check_accuracy(accuracy)
    if cell is None:
        if slab_axis is not None:
            raise ValueError("slab_axis needs a periodic cell (cell=None means open boundaries)")
        return pos, sig, None, None
    cell = check_cell(cell)
    setup = prepare_ewald(cell, pos.shape[0], sig, accuracy, slab_axis=slab_axis, positions=pos)
    return pos, sig, cell, setup.build(pos, cell)


def _dtype():
    return jnp.zeros(()).dtype


def coulomb_energy(positions, charges, sigmas=0.0, cell=None, accuracy: float = CONVENIENCE_ACCURACY,
                   *, slab_axis: Optional[int] = None) -> float:
    """Coulomb energy (eV) of Gaussian charges, open (``cell=None``) or 3-D periodic (Ewald).

    Args:
        positions: (N, 3) Å.
        charges: (N,) e. A periodic cell with net charge gets the neutralising background.
        sigmas: Gaussian widths, scalar or (N,), Å; 0 means point charges (default).
        cell: None for open boundaries, else (3, 3) lattice vectors as rows, Å.
        accuracy: requested relative accuracy of the Ewald sum (default 1e-8).
        slab_axis: None, or 0/1/2 to add the slab dipole correction along that cell vector.

    Raises:
        ValueError: wrong shapes, NaN/inf, negative sigmas, a singular cell, bad accuracy.
    """
    pos, sig, cell, data = _inputs(positions, sigmas, cell, accuracy, slab_axis)
    q = check_charges(charges, pos.shape[0])
    dt = _dtype()
    if cell is None:
        return float(_open_energy(jnp.asarray(pos, dt), jnp.asarray(sig, dt), jnp.asarray(q, dt)))
    return float(_ewald_energy(jnp.asarray(pos, dt), jnp.asarray(cell, dt), jnp.asarray(sig, dt),
                               jnp.asarray(q, dt), data))


def coulomb_potential(positions, charges, sigmas=0.0, cell=None, accuracy: float = CONVENIENCE_ACCURACY,
                      *, slab_axis: Optional[int] = None) -> np.ndarray:
    """Electrostatic potential phi_i = dE/dq_i at every atom, (N,) eV/e (arguments as ``coulomb_energy``)."""
    pos, sig, cell, data = _inputs(positions, sigmas, cell, accuracy, slab_axis)
    q = check_charges(charges, pos.shape[0])
    dt = _dtype()
    if cell is None:
        phi = _open_potential(jnp.asarray(pos, dt), jnp.asarray(sig, dt), jnp.asarray(q, dt))
    else:
        phi = _ewald_potential(jnp.asarray(pos, dt), jnp.asarray(cell, dt), jnp.asarray(sig, dt),
                               jnp.asarray(q, dt), data)
    return np.asarray(phi)


def coulomb_matrix(positions, sigmas=0.0, cell=None, accuracy: float = CONVENIENCE_ACCURACY,
                   *, slab_axis: Optional[int] = None) -> np.ndarray:
    """Dense symmetric Coulomb matrix M, (N, N) eV/e², with E = 1/2 qᵀ M q for any charges q.

    The diagonal holds the Gaussian self-energy k_e/(sqrt(pi) sigma_i) (0 for point charges)
    and, for periodic cells, the Ewald self and background terms. Memory is O(N²): meant for
    systems up to a few thousand atoms.
    """
    pos, sig, cell, data = _inputs(positions, sigmas, cell, accuracy, slab_axis)
    dt = _dtype()
    if cell is None:
        m = _open_matrix(jnp.asarray(pos, dt), jnp.asarray(sig, dt))
    else:
        m = _ewald_matrix(jnp.asarray(pos, dt), jnp.asarray(cell, dt), jnp.asarray(sig, dt), data)
    return np.asarray(m)
