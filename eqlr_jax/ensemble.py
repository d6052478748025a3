"""Ensembles: K models of one config with stacked parameters, evaluated together with ``vmap``.

The ensemble's energy, forces, stress and charges are the members' means; ``energy_std``,
``forces_std`` and ``charges_std`` are their standard deviations (the spread of the ensemble,
a measure of the model uncertainty), in the same units (eV, eV/Å, e).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .graph import Capacity, Graph
from .potential import Potential, _check_total_charge, energy_terms, predict
from .qeq import QEqConvergenceError
from .runtime import Runtime

__all__ = ["EnsemblePotential", "predict_ensemble"]

_SPREAD = ("energy", "forces", "charges")


@functools.partial(jax.jit, static_argnames=("config", "compute_stress", "runtime"))
def predict_ensemble(config, stacked_params, graph: Graph, compute_stress: bool = True,
                     runtime: Runtime = Runtime()) -> dict:
    """Every output of :func:`~eqlr_jax.potential.predict` averaged over the members (leading axis
    of ``stacked_params``), plus ``energy_std`` (G,), ``forces_std`` (N, 3), ``charges_std`` (N,)
    (long-range models) and ``members_energy`` (K, G)."""
    outs = jax.vmap(lambda p: predict.__wrapped__(config, p, graph, compute_stress, runtime))(stacked_params)
    mean = {}
    for k, v in outs.items():
        if k == "qeq_converged":
            mean[k] = jnp.all(v)
        elif k in ("qeq_residual", "qeq_iterations"):
            mean[k] = jnp.max(v)
        else:
            mean[k] = jnp.mean(v, axis=0)
    for k in _SPREAD:
        if k in outs:
            mean[f"{k}_std"] = jnp.std(outs[k], axis=0)
    mean["members_energy"] = outs["energy"]
    return mean


@dataclasses.dataclass(frozen=True)
class EnsemblePotential:
    """K potentials of one config: ``params`` is their parameter tree with a leading axis of K.

    It has the interface of :class:`~eqlr_jax.Potential` (``graph``, ``__call__``,
    ``calculator``), so the ASE calculator and training code take either.
    """

    config: Any
    params: Any
    runtime: Runtime = Runtime()

    @classmethod
    def from_potentials(cls, potentials: Sequence[Potential]) -> "EnsemblePotential":
        configs = {p.config for p in potentials}
        if len(configs) != 1:
            raise ValueError("an ensemble needs members of one config")
        stacked = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                                         *[p.params for p in potentials])
        return cls(potentials[0].config, stacked, potentials[0].runtime)

    @property
    def size(self) -> int:
        return int(jax.tree_util.tree_leaves(self.params)[0].shape[0])

    def member(self, k: int) -> Potential:
        return Potential(self.config, jax.tree_util.tree_map(lambda x: x[k], self.params), self.runtime)

    def _single(self) -> Potential:
        return self.member(0)

    @property
    def cutoff(self) -> float:
        return self.config.r_max

    @property
    def species(self):
        return self.config.species

    @property
    def long_range(self) -> bool:
        return self._single().long_range

    def num_params(self) -> int:
        return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(self.params)))

    def graph(self, structures, capacity: Capacity | None = None, dtype=None, total_charge=None):
        return self._single().graph(structures, capacity=capacity, dtype=dtype, total_charge=total_charge)

    def __call__(self, graph: Graph, compute_stress: bool = True, charges_guess=None) -> dict:
        """Mean outputs and spreads (see :func:`predict_ensemble`); ``charges_guess`` is ignored
        (each member solves its own QEq)."""
        if self.long_range:
            _check_total_charge(graph)
        out = predict_ensemble(self.config, self.params, graph, compute_stress=compute_stress, runtime=self.runtime)
        if self.long_range and not bool(out["qeq_converged"]):
            raise QEqConvergenceError(f"charge equilibration of a member did not converge (residual "
                                      f"{float(out['qeq_residual']):.3g} eV/e)")
        return out

    def terms(self, graph: Graph, positions=None, cell=None, charges_guess=None) -> dict[str, jax.Array]:
        """The members' mean of :func:`~eqlr_jax.potential.energy_terms` (pure, no jit of its own),
        plus ``members_energy`` (K, G) eV, whose gradients are the members' forces (what
        ``eqlr_jax.jax_md`` logs as the force uncertainty). ``charges_guess`` (N,) e starts every
        member's QEq; ``qeq_residual`` and ``qeq_iterations`` are the members' largest."""
        outs = jax.vmap(lambda p: energy_terms(self.config, p, graph, positions, cell, self.runtime,
                                               charges_guess))(self.params)
        mean = {k: (jnp.max(v, axis=0) if k in ("qeq_residual", "qeq_iterations")
                    else jnp.all(v, axis=0) if v.dtype == bool else jnp.mean(v, axis=0)) for k, v in outs.items()}
        mean["members_energy"] = outs["energy"]
        return mean

    def calculator(self, **kwargs):
        from .calculator import Calculator

        return Calculator(self, **kwargs)
