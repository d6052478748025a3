"""The NequIP-LR energy: stage 1 → χ → QEq → stage 2 → E_short + E_elec.

Pure functions of (config, params, graph, edge vectors, positions, cell): the caller
differentiates them for forces and stress, through the QEq solve (implicit derivatives).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import qeq
from ..electrostatics.flat import flat_operator
from ..runtime import Runtime
from . import heads
from .config import LRConfig
from .sr import apply_network, cast_params, network_params

__all__ = ["lr_params", "lr_terms"]


def lr_params(config: LRConfig, seed: int, dtype) -> dict:
    """Initial parameters: ``stage1``, ``chi``, ``qeq`` and ``stage2`` (only ``stage2`` when the
    long range is off), from one NumPy stream seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    if not config.long_range:
        return {"stage2": network_params(config.stage2(), rng, dtype)}
    params = {"stage1": network_params(config.stage1(), rng, dtype, readout=False)}
    params.update(heads.head_param_values(config, rng, dtype))
    params["stage2"] = network_params(config.stage2(), rng, dtype)
    return params


def _segment(x, seg, n):
    return jax.ops.segment_sum(x, seg, num_segments=n)


def lr_terms(config: LRConfig, params, graph, vec, positions, cell, runtime: Runtime, guess=None) -> dict:
    """Energies and charges of every structure of a long-range graph.

    Args:
        vec: (E, 3) edge vectors, Å (of ``positions`` and ``cell``).
        positions: (N, 3) Å, cell: (G, 3, 3) Å: what the electrostatics sees.
        guess: optional (N,) charges to start the CG solve from (e.g. the last MD step's).

    Returns a dict of ``energy`` (G,), ``node_energies`` (N,), ``energy_short`` (G,),
    ``energy_elec`` (G,), ``energy_qeq`` (G,) (eV), ``charges`` (N,) e, ``chi`` (N,) eV/e,
    ``hardness`` (N,) eV/e², ``sigmas`` (N,) Å and the solver's ``qeq_residual`` (eV/e),
    ``qeq_iterations`` and ``qeq_converged``.
    """
    if graph.long_range is None:
        raise ValueError("this graph has no long-range data: build it with the long-range model's "
                         "Potential.graph (or build_graph(..., long_range=...))")
    dt = vec.dtype
    params = cast_params(params, dt)  # the networks' parameters: cast again to the network dtype
    mask, seg, species = graph.node_mask, graph.node_graph, graph.species
    n_graph = graph.n_graph_capacity
    _, feats = apply_network(config.stage1(), params["stage1"], graph, vec, runtime, readout=False)
    chi = jnp.where(mask, heads.chi_head(config, params["chi"], feats, species), 0.0)
    hard = heads.hardness(config, params["qeq"], species)
    sig = heads.sigmas(config, params["qeq"], species, dt)
    op = flat_operator(positions, cell, sig, seg, mask, graph.long_range,
                       dense_real=mask.shape[0] <= runtime.dense_pairs_max_atoms)
    res = qeq.solve(op, chi, hard, graph.total_charge, solver=runtime.qeq_method(mask.shape[0]),
                    tol=config.qeq_tol, max_iter=runtime.qeq_max_iter, guess=guess)
    q = res.charges
    inputs = heads.charge_encoding(config, q)
    if config.stage2_input == "stage1":
        inputs = jnp.concatenate([inputs, feats], axis=-1)
    out, _ = apply_network(config.stage2(), params["stage2"], graph, vec, runtime, inputs)
    e_short_node = jnp.where(mask, out[:, 0], 0.0)
    e_elec_node = jnp.where(mask, 0.5 * q * op.matvec(q), 0.0)
    e_local_node = jnp.where(mask, chi * q + 0.5 * hard * q * q, 0.0)
    e_elec_total = e_elec_node + (e_local_node if config.energy == "qeq" else 0.0)
    node = e_short_node + e_elec_total
    e_short = _segment(e_short_node, seg, n_graph)
    e_elec = _segment(e_elec_node, seg, n_graph)
    return {"energy": _segment(node, seg, n_graph), "node_energies": node, "energy_short": e_short,
            "energy_elec": e_elec, "energy_qeq": e_elec + _segment(e_local_node, seg, n_graph),
            "charges": q, "chi": chi, "hardness": jnp.where(mask, hard, 0.0), "sigmas": jnp.where(mask, sig, 0.0),
            "qeq_residual": res.residual, "qeq_iterations": res.iterations, "qeq_converged": res.converged}
