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


def _inputs(positions, sigmas, cell, accuracy, slab_axis, charges=None):
    """Validate everything (before any expensive set-up); returns (pos, sig, q, cell, data)."""
    for name, x in (("positions", positions), ("cell", cell), ("sigmas", sigmas), ("charges", charges)):
        if isinstance(x, jax.core.Tracer):
            raise TypeError(
                f"{name} is a JAX tracer: coulomb_energy/coulomb_matrix are host functions. Under"
                " jit/grad use prepare_ewald(...).build(...) and ewald_energy (or open_energy)")
    pos = check_positions(positions)
    sig = check_sigmas(sigmas, pos.shape[0])
    q = None if charges is None else check_charges(charges, pos.shape[0])
    check_accuracy(accuracy)
    if cell is None:
        if slab_axis is not None:
            raise ValueError("slab_axis needs a periodic cell (cell=None means open boundaries)")
        return pos, sig, q, None, None
    cell = check_cell(cell)
    setup = prepare_ewald(cell, pos.shape[0], sig, accuracy, slab_axis=slab_axis)
    data = setup.build(pos, cell, on_overflow="flag")
    found = int(data.pairs.n_found)
    if found > setup.pair_capacity:
        # inhomogeneous system (slab, cluster in vacuum): size the list from the actual count
        setup = prepare_ewald(cell, pos.shape[0], sig, accuracy, slab_axis=slab_axis,
                              pair_capacity=setup.pair_capacity + found)
        data = setup.build(pos, cell)
    return pos, sig, q, cell, data


def _evaluate(open_fn, ewald_fn, pos, sig, cell, data, *q):
    """Cast to the default float dtype and call the open or the Ewald kernel."""
    dt = jnp.zeros(()).dtype  # float64 under jax_enable_x64, else float32
    pos, sig = jnp.asarray(pos, dt), jnp.asarray(sig, dt)
    q = tuple(jnp.asarray(x, dt) for x in q)
    if cell is None:
        return open_fn(pos, sig, *q)
    return ewald_fn(pos, jnp.asarray(cell, dt), sig, *q, data)


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
    pos, sig, q, cell, data = _inputs(positions, sigmas, cell, accuracy, slab_axis, charges)
    return float(_evaluate(_open_energy, _ewald_energy, pos, sig, cell, data, q))


def coulomb_potential(positions, charges, sigmas=0.0, cell=None, accuracy: float = CONVENIENCE_ACCURACY,
                      *, slab_axis: Optional[int] = None) -> np.ndarray:
    """Electrostatic potential phi_i = dE/dq_i at every atom, (N,) eV/e (arguments as ``coulomb_energy``)."""
    pos, sig, q, cell, data = _inputs(positions, sigmas, cell, accuracy, slab_axis, charges)
    return np.asarray(_evaluate(_open_potential, _ewald_potential, pos, sig, cell, data, q))


def coulomb_matrix(positions, sigmas=0.0, cell=None, accuracy: float = CONVENIENCE_ACCURACY,
                   *, slab_axis: Optional[int] = None) -> np.ndarray:
    """Dense symmetric Coulomb matrix M, (N, N) eV/e², with E = 1/2 qᵀ M q for any charges q.

    The diagonal holds the Gaussian self-energy k_e/(sqrt(pi) sigma_i) (0 for point charges)
    and, for periodic cells, the Ewald self and background terms. Memory is O(N²): meant for
    systems up to a few thousand atoms.
    """
    pos, sig, _, cell, data = _inputs(positions, sigmas, cell, accuracy, slab_axis)
    return np.asarray(_evaluate(_open_matrix, _ewald_matrix, pos, sig, cell, data))
