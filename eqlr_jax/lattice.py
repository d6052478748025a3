"""The one rule for a singular cell, shared by :class:`eqlr_jax.Structure` and the
electrostatics input checks (a leaf module: imports only NumPy).

Units: Å.
"""
from __future__ import annotations

import numpy as np

__all__ = ["lattice_defect", "SINGULAR_RTOL", "MIN_CELL_VOLUME"]

#: k lattice vectors are singular when the k-volume they span is at most this fraction of the
#: product of their lengths (|sin| of the angle for two vectors; 1 for orthogonal vectors).
SINGULAR_RTOL = 1e-10

#: Absolute floor, Å^3, on the volume of three periodic vectors; k < 3 vectors must span at
#: least MIN_CELL_VOLUME**(k/3) Å^k (edges of about 0.01 Å). The relative rule alone is
#: scale-invariant and so accepts a well-shaped cell at an absurd scale, typically one given in
#: the wrong unit (metres: volume ~1e-28); vesin and the k-space set-up would then try to
#: enumerate astronomically many images instead of failing. No atomic cell comes near the floor
#: (every atom would overlap its own images, which are closer than the 0.1 Å overlap limit).
MIN_CELL_VOLUME = 1e-6

_MEASURE = {1: ("length", "Å"), 2: ("area", "Å^2"), 3: ("volume", "Å^3")}


def lattice_defect(vectors) -> str | None:
    """Why the rows of ``vectors`` (k, 3), 1 ≤ k ≤ 3, are not usable lattice vectors, or None.

    The reason reads after "has" / "have" ("zero volume (...): the cell is singular ...").

    The k-volume (square root of the Gram determinant, computed as the product of the singular
    values, which stays accurate for nearly dependent vectors) must exceed
    :data:`SINGULAR_RTOL` × the product of the vector lengths and the floor
    MIN_CELL_VOLUME**(k/3). The inputs are assumed finite.
    """
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    k = v.shape[0]
    if not 1 <= k <= 3:
        raise ValueError(f"expected 1 to 3 lattice vectors, got {k}")
    lengths = np.linalg.norm(v, axis=1)
    size = float(np.prod(np.linalg.svd(v, compute_uv=False)))
    measure, unit = _MEASURE[k]
    if size <= SINGULAR_RTOL * float(np.prod(lengths)):
        return (f"zero {measure} ({size:.3g} {unit} for vector lengths {lengths.tolist()} Å): the cell"
                " is singular (its vectors are zero or linearly dependent, or nearly so)")
    floor = MIN_CELL_VOLUME ** (k / 3.0)
    if size < floor:
        return (f"a {measure} of only {size:.3g} {unit}, below {floor:.3g} {unit} (vector lengths"
                f" {lengths.tolist()} Å): the cell is degenerate; is it given in Å?")
    return None
