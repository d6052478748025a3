"""Datasets: frames with reference energies, forces, stress, charges and dipoles, read from
extended XYZ or ASE databases; splits; dataset statistics.

Units: eV, Å, e, eV/Å, eV/Å³ (ASE sign for the stress), e·Å for dipoles.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Sequence

import numpy as np

from ..structure import Structure

__all__ = ["Keys", "Frame", "DatasetError", "load_frames", "split_indices", "reference_energies",
           "force_rms", "average_neighbors"]


class DatasetError(ValueError):
    """A dataset cannot be used: the message names the file and the frame."""


@dataclasses.dataclass(frozen=True)
class Keys:
    """Where each reference property is stored in a frame. Each key is looked up in the ASE
    calculator results, then ``atoms.info``, then ``atoms.arrays``; None: not used.

    The defaults are ASE's own names (``ase.io.read`` puts an extxyz ``charge`` column into the
    results as ``charges``). SPICE files use ``forces="force"``, ``charges="mbi_charges"``.
    The total charge falls back to ``info["charge"]``, then to the rounded sum of the reference
    charges, then 0.
    """

    energy: str | None = "energy"
    forces: str | None = "forces"
    stress: str | None = "stress"
    charges: str | None = "charges"
    dipole: str | None = "dipole"
    total_charge: str | None = "total_charge"


@dataclasses.dataclass(frozen=True)
class Frame:
    """One structure with its references (None where the dataset has none).

    Attributes:
        structure: the validated :class:`~eqlr_jax.Structure` (total charge included).
        energy: eV. forces: (n, 3) eV/Å. stress: (3, 3) eV/Å³. charges: (n,) e.
        dipole: (3,) e·Å. source: "file:index" for error messages.
    """

    structure: Structure
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    charges: np.ndarray | None = None
    dipole: np.ndarray | None = None
    source: str = ""

    @property
    def n_atoms(self) -> int:
        return self.structure.n_atoms


def _lookup(atoms, key):
    if key is None:
        return None
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    for table in (results, atoms.info, atoms.arrays):
        if key in table:
            return table[key]
    return None


def _voigt_to_matrix(s):
    s = np.asarray(s, np.float64)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return s.reshape(3, 3)


def _frame(atoms, keys: Keys, source: str) -> Frame:
    n = len(atoms)

    def get(name, shape, required=False):
        key = getattr(keys, name)
        value = _lookup(atoms, key)
        if value is None:
            return None
        value = np.asarray(value, np.float64)
        if name == "stress":
            value = _voigt_to_matrix(value)
        if shape is not None and value.shape != shape and np.squeeze(value).shape == shape:
            value = value.reshape(shape)  # e.g. SPICE's dipole, stored as [[x, y, z]]
        if shape is not None and value.shape != shape:
            raise DatasetError(f"{source}: {name} (key {key!r}) has shape {value.shape}, expected {shape}")
        if not np.all(np.isfinite(value)):
            raise DatasetError(f"{source}: {name} (key {key!r}) contains NaN or inf")
        return value

    energy = get("energy", ())
    forces = get("forces", (n, 3))
    stress = get("stress", (3, 3)) if bool(np.all(atoms.pbc)) else None
    charges = get("charges", (n,))
    dipole = get("dipole", (3,))
    q = _lookup(atoms, keys.total_charge)
    if q is None:
        q = atoms.info.get("charge")
    if q is None:
        q = float(np.round(charges.sum())) if charges is not None else 0.0
    try:
        structure = Structure(positions=atoms.get_positions(), numbers=atoms.get_atomic_numbers(),
                              cell=np.asarray(atoms.get_cell()), pbc=atoms.get_pbc(), total_charge=float(q))
    except ValueError as e:
        raise DatasetError(f"{source}: {e}") from e
    return Frame(structure, None if energy is None else float(energy), forces, stress, charges, dipole, source)


def load_frames(path: str | os.PathLike, keys: Keys = Keys(), index=":", format: str | None = None,
                require: Sequence[str] = ("energy",)) -> list[Frame]:
    """Read every frame of an extxyz (also ``.xyz.gz``) file or ASE database.

    Args:
        require: properties every frame must have (a missing one is an error naming the frame).

    Raises:
        FileNotFoundError: no such file. DatasetError: unreadable file, a missing required key,
            NaN or a wrong shape (naming the file and frame).
    """
    import ase.io

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset not found: {path}")
    try:
        images = ase.io.read(path, index=index, format=format)
    except Exception as e:  # ASE raises many types for bad files
        raise DatasetError(f"{path}: cannot read as a dataset ({type(e).__name__}: {e})") from e
    images = images if isinstance(images, list) else [images]
    if not images:
        raise DatasetError(f"{path}: no frames")
    frames = []
    for k, atoms in enumerate(images):
        frame = _frame(atoms, keys, f"{path}:{k}")
        for name in require:
            if getattr(frame, name) is None:
                raise DatasetError(f"{path}:{k}: frame has no {name} (key {getattr(keys, name)!r}); set "
                                   f"data.{name}_key to the key this file uses")
        frames.append(frame)
    return frames


def split_indices(n: int, valid_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Disjoint train / valid / test index arrays from a seeded permutation (sizes rounded
    down for valid and test, at least one training frame)."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(f"valid_fraction + test_fraction must be < 1, got {valid_fraction} + {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_valid, n_test = int(math.floor(valid_fraction * n)), int(math.floor(test_fraction * n))
    if n - n_valid - n_test < 1:
        raise ValueError(f"{n} frames leave no training frame")
    return {"test": np.sort(perm[:n_test]), "valid": np.sort(perm[n_test:n_test + n_valid]),
            "train": np.sort(perm[n_test + n_valid:])}


def reference_energies(frames: Sequence[Frame], species: Sequence[int]) -> np.ndarray:
    """Per-species energies e_Z (eV) minimising Σ_frames (E − Σ_Z n_Z e_Z)² (least squares;
    ``lstsq``'s minimum-norm solution when the compositions do not determine them)."""
    lookup = {z: k for k, z in enumerate(species)}
    a = np.zeros((len(frames), len(species)))
    b = np.zeros(len(frames))
    for r, f in enumerate(frames):
        for z in f.structure.numbers:
            a[r, lookup[int(z)]] += 1
        b[r] = f.energy
    return np.linalg.lstsq(a, b, rcond=None)[0]


def force_rms(frames: Sequence[Frame]) -> float:
    """Root mean square of the reference force components, eV/Å (1 without forces)."""
    parts = [f.forces.ravel() for f in frames if f.forces is not None]
    if not parts:
        return 1.0
    value = float(np.sqrt(np.mean(np.concatenate(parts) ** 2)))
    return value if value > 0 else 1.0


def average_neighbors(frames: Sequence[Frame], cutoff: float, edges=None) -> float:
    """Mean number of neighbours within ``cutoff`` (Å) per atom."""
    from ..neighbors import neighbor_list

    n_edges = sum(len((e if edges is not None else neighbor_list(f.structure, cutoff))[0])
                  for f, e in zip(frames, edges if edges is not None else [None] * len(frames)))
    return max(n_edges / max(sum(f.n_atoms for f in frames), 1), 1.0)
