"""Typed configuration of the NequIP network."""
from __future__ import annotations

import dataclasses
from typing import Sequence

__all__ = ["NequIPConfig", "to_atomic_numbers"]


def to_atomic_numbers(species: Sequence[int | str]) -> tuple[int, ...]:
    """Element symbols or atomic numbers -> tuple of atomic numbers."""
    from ase.data import atomic_numbers  # a plain table; ase.data has no heavy imports

    out = []
    for s in species:
        if isinstance(s, str):
            if s not in atomic_numbers:
                raise ValueError(f"unknown element symbol {s!r}")
            out.append(atomic_numbers[s])
        else:
            out.append(int(s))
    if len(set(out)) != len(out):
        raise ValueError(f"species contains duplicates: {list(species)}")
    return tuple(out)


# Keys that older model files have in their config and that are no longer part of the model:
# ``edge_block`` is now ``eqlr_jax.Runtime.edge_block`` (a speed option; results do not depend on it).
LEGACY_FIELDS = frozenset({"edge_block"})


@dataclasses.dataclass(frozen=True)
class NequIPConfig:
    """Hyperparameters of the NequIP network (hashable: used as a static jit argument).

    Attributes:
        species: atomic numbers (or symbols) the model knows, in species-index order.
        r_max: cutoff radius, Å.
        l_max: maximum spherical-harmonic degree of edge and node features.
        num_features: multiplicity of every irrep in the hidden features.
        num_layers: number of interaction blocks.
        parity: True for O(3) features with both parities (NequIP default,
            e.g. ``32x0e+32x0o+32x1o+32x1e`` at l_max 1); False for only the parities that
            spherical harmonics reach (``32x0e+32x1o``).
        num_bessel: size of the Bessel radial basis.
        polynomial_p: exponent p of the polynomial cutoff envelope.
        radial_mlp_depth, radial_mlp_width: hidden layers of the radial MLP.
        avg_num_neighbors: messages are divided by sqrt(avg_num_neighbors).
        n_node_inputs: number of extra per-atom scalar inputs (e.g. a charge encoding for the
            stage-2 network of the long-range model); 0 for a plain short-range model.
        n_outputs: number of per-atom scalar outputs (1: energy; stage 1 predicts chi).
        species_scale, species_shift: initial per-species scale (eV) and shift (eV) of the
            first output; trainable parameters. Defaults 1 and 0.

    Speed and memory options (such as the edge blocks) are not part of the model: they are
    passed beside the config, in an :class:`eqlr_jax.Runtime`.
    """

    species: tuple[int, ...]
    r_max: float = 5.0
    l_max: int = 1
    num_features: int = 32
    num_layers: int = 4
    parity: bool = True
    num_bessel: int = 8
    polynomial_p: int = 6
    radial_mlp_depth: int = 2
    radial_mlp_width: int = 64
    avg_num_neighbors: float = 20.0
    n_node_inputs: int = 0
    n_outputs: int = 1
    species_scale: tuple[float, ...] | None = None
    species_shift: tuple[float, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "species", to_atomic_numbers(self.species))
        n = len(self.species)
        for name in ("species_scale", "species_shift"):
            v = getattr(self, name)
            if v is not None:
                v = tuple(float(x) for x in (v if hasattr(v, "__len__") else [v] * n))
                if len(v) != n:
                    raise ValueError(f"{name} needs {n} values (one per species), got {len(v)}")
                object.__setattr__(self, name, v)
        if n == 0:
            raise ValueError("species must list at least one element")
        if not self.r_max > 0:
            raise ValueError(f"r_max must be positive, got {self.r_max}")
        for name in ("l_max", "num_layers", "n_node_inputs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("num_features", "num_bessel", "radial_mlp_width", "n_outputs", "polynomial_p"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {self.avg_num_neighbors}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NequIPConfig":
        """Inverse of :meth:`to_dict`. Unknown keys are an error, except the
        :data:`LEGACY_FIELDS` that older model files have, which are dropped silently (their
        values only chose speed options, now in :class:`eqlr_jax.Runtime`)."""
        d = {k: v for k, v in d.items() if k not in LEGACY_FIELDS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown NequIPConfig fields: {sorted(unknown)}")
        for k in ("species", "species_scale", "species_shift"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)
