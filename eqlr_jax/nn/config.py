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
        edge_block: performance knob, not part of the model: graphs with more edges than this
            are processed in blocks of at most ``edge_block`` edges whose backward pass
            recomputes their forward pass (see ``nn/edge_blocks.py``). This bounds memory and,
            on CPU, is faster too (smaller buffers stay in cache; ``benchmarks/bench_memory.py``).
            ``None``: never. ``"auto"`` (default): on CPU, blocks of 1024
            edges with two or more cores, 512 with one (half as many in float64), at most
            256 blocks; never on other devices. The
            results are the same up to rounding.
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
    edge_block: int | str | None = "auto"

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
        if not (self.edge_block is None or self.edge_block == "auto"
                or (isinstance(self.edge_block, int) and not isinstance(self.edge_block, bool)
                    and self.edge_block >= 1)):
            raise ValueError(f"edge_block must be an int >= 1, None or 'auto', got {self.edge_block!r}")
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {self.avg_num_neighbors}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NequIPConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown NequIPConfig fields: {sorted(unknown)}")
        d = dict(d)
        for k in ("species", "species_scale", "species_shift"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)
