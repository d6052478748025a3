"""Host-side checks of user input. Every problem raises ``ValueError`` naming it.

These run on NumPy arrays outside ``jit``; the jit-compiled compute functions do not check
their inputs (they cannot raise).
"""

import numpy as np

from ..lattice import lattice_defect


def check_positions(positions) -> np.ndarray:
    """Return positions as float64 (N, 3); raise on a wrong shape or non-finite values."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {pos.shape}")
    if pos.shape[0] < 1:
        raise ValueError("positions must hold at least one atom")
    if not np.all(np.isfinite(pos)):
        bad = np.flatnonzero(~np.all(np.isfinite(pos), axis=1))
        raise ValueError(f"positions contain NaN or inf (atoms {bad[:10].tolist()})")
    return pos


def check_cell(cell) -> np.ndarray:
    """Return the cell as float64 (3, 3) (rows = lattice vectors, Å); raise if singular
    (the rule of :func:`eqlr_jax.lattice.lattice_defect`, shared with ``Structure``)."""
    c = np.asarray(cell, dtype=np.float64)
    if c.shape != (3, 3):
        raise ValueError(f"cell must have shape (3, 3) (rows are lattice vectors), got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("cell contains NaN or inf")
    defect = lattice_defect(c)
    if defect is not None:
        raise ValueError(f"cell has {defect}; a periodic Ewald sum needs three independent lattice vectors")
    return c


def check_sigmas(sigmas, n_atoms: int) -> np.ndarray:
    """Return Gaussian widths as float64 (N,), broadcasting a scalar; raise if negative."""
    s = np.asarray(sigmas, dtype=np.float64)
    if s.ndim == 0:
        s = np.full(n_atoms, float(s))
    if s.shape != (n_atoms,):
        raise ValueError(f"sigmas must be a scalar or have shape ({n_atoms},), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("sigmas contain NaN or inf")
    if np.any(s < 0):
        raise ValueError(f"sigmas must be >= 0 (Gaussian widths in Å), got min {s.min():.3g}")
    return s


def check_charges(charges, n_atoms: int) -> np.ndarray:
    """Return charges as float64 (N,); raise if the shape does not match the positions."""
    q = np.asarray(charges, dtype=np.float64)
    if q.shape != (n_atoms,):
        raise ValueError(f"charges must have shape ({n_atoms},) to match positions, got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError("charges contain NaN or inf")
    return q


def check_accuracy(accuracy) -> float:
    """Return the accuracy as float; raise unless 0 < accuracy < 1."""
    acc = float(accuracy)
    if not (0.0 < acc < 1.0):
        raise ValueError(f"accuracy must lie in (0, 1), got {accuracy}")
    return acc
