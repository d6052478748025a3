"""Typed configuration of the NequIP-LR model (and of the same model with long range off)."""
from __future__ import annotations

import dataclasses
import math

from ..nn.config import NequIPConfig, to_atomic_numbers

__all__ = ["LRConfig", "CHI_HEADS", "ENERGY_TERMS", "STAGE2_INPUTS"]

CHI_HEADS = ("mlp", "bounded")
ENERGY_TERMS = ("coulomb", "qeq")
STAGE2_INPUTS = ("embedding", "stage1")

#: Hyperparameters shared by both NequIP stages (same meaning as in :class:`NequIPConfig`).
_SHARED = ("species", "r_max", "l_max", "num_features", "parity", "num_bessel", "polynomial_p",
           "radial_mlp_depth", "radial_mlp_width", "avg_num_neighbors")


def _per_species(name, value, n, positive=False):
    if value is None:
        return None
    v = tuple(float(x) for x in (value if hasattr(value, "__len__") else [value] * n))
    if len(v) != n:
        raise ValueError(f"{name} needs {n} values (one per species), got {len(v)}")
    if not all(math.isfinite(x) for x in v) or (positive and not all(x > 0 for x in v)):
        raise ValueError(f"{name} must be finite{' and positive' if positive else ''}, got {v}")
    return v


@dataclasses.dataclass(frozen=True)
class LRConfig:
    """NequIP-LR: stage 1 (χ) → QEq → stage 2 (short-range energy from species and charges).

    Hashable: a static jit argument. ``long_range=False`` switches the long-range part off: the
    model is then stage 2 alone without charge inputs, i.e. a short-range NequIP of
    ``num_layers`` layers, the same code for a fair comparison.

    Attributes:
        species, r_max (Å), l_max, num_features, parity, num_bessel, polynomial_p,
        radial_mlp_depth, radial_mlp_width, avg_num_neighbors: as :class:`NequIPConfig`, shared
            by both stages.
        num_layers_charge: interaction layers of stage 1 (0 allowed: χ from the species alone).
        num_layers: interaction layers of stage 2 (the short-range energy).
        long_range: False for the short-range model (no stage 1, no QEq, no charges).
        species_scale, species_shift: initial per-species scale and shift (eV) of the per-atom
            short-range energy.
        chi_head: ``"mlp"``: χ_i = MLP(stage-1 scalars) + a per-species offset (eV/e);
            ``"bounded"``: χ_i = χ_ref · (1 + chi_bound · tanh(MLP)), kept within ±chi_bound of
            the per-species reference (the NequIP-LR authors' variant).
        chi_hidden: width of the χ MLP's hidden layer.
        chi_bound: relative half-width of the bounded band (0 < bound < 1).
        chi_reference: per-species χ, eV/e: the bounded head's centre (default: Pauling values)
            and the MLP head's initial offset (default 0).
        hardness_init: initial per-species hardness J > 0, eV/e² (J = softplus(p), learned).
        sigmas: per-species Gaussian widths σ, Å (default: ASE covalent radii).
        learn_sigma: learn σ within [σ/2, 3σ/2] (σ = σ0 (½ + sigmoid(p))).
        charge_basis: number K of Gaussians over q in stage 2's charge encoding (q itself is
            always added).
        charge_range: (q_min, q_max), e: the centres of the charge Gaussians.
        stage2_input: ``"embedding"``: stage 2's node inputs are the species embedding and the
            charge encoding; ``"stage1"``: the stage-1 scalar features join them.
        energy: ``"coulomb"`` (default): E = E_short + E_elec, the Coulomb energy of the
            Gaussian charges (as 4G-HDNNP); ``"qeq"``: E = E_short + E_QEq, which adds
            Σ(χq + ½Jq²) (as the NequIP-LR authors' code).
        ewald_accuracy: relative accuracy ε of the Ewald sums (periodic structures).
        qeq_tol: relative tolerance of the iterative QEq solve (raised to 20 ε of float32 in
            float32).
    """

    species: tuple[int, ...]
    r_max: float = 5.0
    l_max: int = 1
    num_features: int = 32
    parity: bool = True
    num_bessel: int = 8
    polynomial_p: int = 6
    radial_mlp_depth: int = 2
    radial_mlp_width: int = 64
    avg_num_neighbors: float = 20.0
    num_layers_charge: int = 2
    num_layers: int = 2
    long_range: bool = True
    species_scale: tuple[float, ...] | None = None
    species_shift: tuple[float, ...] | None = None
    chi_head: str = "mlp"
    chi_hidden: int = 16
    chi_bound: float = 0.2
    chi_reference: tuple[float, ...] | None = None
    hardness_init: float | tuple[float, ...] = 1.0
    sigmas: tuple[float, ...] | None = None
    learn_sigma: bool = False
    charge_basis: int = 16
    charge_range: tuple[float, float] = (-1.5, 1.5)
    stage2_input: str = "embedding"
    energy: str = "coulomb"
    ewald_accuracy: float = 1e-6
    qeq_tol: float = 1e-7

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("species", to_atomic_numbers(self.species))
        n = len(self.species)
        set_("species_scale", _per_species("species_scale", self.species_scale, n))
        set_("species_shift", _per_species("species_shift", self.species_shift, n))
        set_("chi_reference", _per_species("chi_reference", self.chi_reference, n))
        set_("hardness_init", _per_species("hardness_init", self.hardness_init, n, positive=True))
        set_("sigmas", _per_species("sigmas", self.sigmas, n, positive=True))
        set_("charge_range", tuple(float(x) for x in self.charge_range))
        for name, allowed in (("chi_head", CHI_HEADS), ("energy", ENERGY_TERMS), ("stage2_input", STAGE2_INPUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.num_layers_charge < 0 or self.num_layers < 0:
            raise ValueError("num_layers_charge and num_layers must be >= 0")
        if self.chi_hidden < 1 or self.charge_basis < 0:
            raise ValueError("chi_hidden must be >= 1 and charge_basis >= 0")
        if not 0.0 < self.chi_bound < 1.0:
            raise ValueError(f"chi_bound must lie in (0, 1), got {self.chi_bound}")
        lo, hi = self.charge_range if len(self.charge_range) == 2 else (0.0, 0.0)
        if not (len(self.charge_range) == 2 and lo < hi):
            raise ValueError(f"charge_range must be (q_min, q_max) with q_min < q_max, got {self.charge_range}")
        for name in ("ewald_accuracy", "qeq_tol"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}")
        if self.chi_head == "bounded" and self.long_range:
            from .elements import pauling_electronegativities

            if self.chi_reference is None:
                pauling_electronegativities(self.species)  # raises naming the missing elements
        self.stage2()  # validates the shared hyperparameters

    # the two NequIP stages -------------------------------------------------------------------
    def _nequip(self, **kw) -> NequIPConfig:
        return NequIPConfig(**{k: getattr(self, k) for k in _SHARED}, **kw)

    def stage1(self) -> NequIPConfig:
        """The charge network (its readout is not used: the χ head reads its scalar features)."""
        return self._nequip(num_layers=self.num_layers_charge)

    def n_charge_inputs(self) -> int:
        """Per-atom inputs of stage 2: K Gaussians, q, and (``stage2_input="stage1"``) the
        stage-1 scalars."""
        if not self.long_range:
            return 0
        return self.charge_basis + 1 + (self.num_features if self.stage2_input == "stage1" else 0)

    def stage2(self) -> NequIPConfig:
        """The short-range energy network."""
        return self._nequip(num_layers=self.num_layers, n_node_inputs=self.n_charge_inputs(),
                            species_scale=self.species_scale, species_shift=self.species_shift)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LRConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown LRConfig fields: {sorted(unknown)}")
        d = dict(d)
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = tuple(v)
        return cls(**d)
