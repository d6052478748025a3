"""QEq in molecular dynamics: a jax-md integrator that carries the previous step's charges in its
state as the warm start of the next QEq solve (:func:`qeq_integrator`, :class:`QEqState`).

It wraps the functions of :func:`eqlr_jax.jax_md.md_functions`; ``eqlr_jax.jax_md`` re-exports
both names. jax-md is imported when an integrator is made.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax

if TYPE_CHECKING:
    from .jax_md import MDFunctions

__all__ = ["QEqState", "qeq_integrator"]


class QEqState(NamedTuple):
    """An integrator state with the charges of its positions (the next solve's warm start).

    Attributes:
        md: the jax-md state. charges: (N,) e. terms: the ``terms_fn`` outputs at ``md``'s
        positions (``energy``, ``energy_short``, ``energy_elec``, ``qeq_residual``, ...).
    """

    md: Any
    charges: jax.Array
    terms: dict


def qeq_integrator(integrator, fns: MDFunctions, shift_fn, *args, **kwargs):
    """A jax-md integrator whose force evaluations start QEq from the previous step's charges.

    ``integrator`` is a jax-md factory (``simulate.nve``, ``nvt_langevin``, ``nvt_nose_hoover``,
    ``npt_nose_hoover``, ...), called as ``integrator(energy_or_force_fn, shift_fn, *args,
    **kwargs)``. Returns ``(init_fn, apply_fn)`` on :class:`QEqState`:
    ``init_fn(key, R, neighbor=..., **kw)`` and ``apply_fn(state, neighbor=..., **kw)``.

    Integrators that take a force function get one that returns the charges and the other terms
    of the same evaluation (no extra work). ``npt_nose_hoover`` differentiates the energy with
    respect to the cell itself, so there the charges at the new positions come from one more
    evaluation of the energy without derivatives (which XLA trims to stage 1 and QEq).
    """
    from jax_md import simulate

    needs_energy = integrator is simulate.npt_nose_hoover

    def forces_with_terms(captured, neighbor, guess):
        def force_fn(R, **kw):
            kw.pop("neighbor", None)
            (_, t), g = jax.value_and_grad(lambda r: _energy_aux(fns, r, neighbor, guess, kw), has_aux=True)(R)
            captured.append(t)
            return -g
        return force_fn

    def energy_with_guess(neighbor, guess):
        def energy_fn(R, **kw):
            kw.pop("neighbor", None)
            return fns.energy_fn(R, neighbor, charges_guess=guess, **kw)
        return energy_fn

    def _box_kw(md):
        return {"box": simulate.npt_box(md)} if hasattr(md, "box_position") else {}

    def init_fn(key, R, neighbor, **kw):
        t = fns.terms_fn(R, neighbor, **{k: v for k, v in kw.items() if k == "box"})
        guess = t["charges"] if fns.long_range else None
        if needs_energy:
            md_init, _ = integrator(energy_with_guess(neighbor, guess), shift_fn, *args, **kwargs)
        else:
            md_init, _ = integrator(forces_with_terms([], neighbor, guess), shift_fn, *args, **kwargs)
        md = md_init(key, R, **kw)
        return QEqState(md, t["charges"], t)

    def apply_fn(state: QEqState, neighbor, **kw):
        guess = state.charges if fns.long_range else None
        if needs_energy:
            _, md_apply = integrator(energy_with_guess(neighbor, guess), shift_fn, *args, **kwargs)
            md = md_apply(state.md, **kw)
            t = fns.terms_fn(md.position, neighbor, charges_guess=guess, **_box_kw(md))
        else:
            captured = []
            _, md_apply = integrator(forces_with_terms(captured, neighbor, guess), shift_fn, *args, **kwargs)
            # jax-md jits its step functions; call the undecorated one, so that the force evaluation
            # is traced in this trace and its terms can leave it (a leaked tracer would raise)
            md = getattr(md_apply, "__wrapped__", md_apply)(state.md, **kw)
            t = captured[-1]  # the force evaluation at md.position (after jax-md's eval_shape probe)
        return QEqState(md, t["charges"], t)

    return init_fn, apply_fn


def _energy_aux(fns: MDFunctions, R, neighbor, guess, kw):
    t = fns.terms_fn(R, neighbor, charges_guess=guess, **kw)
    return t["energy"], jax.lax.stop_gradient(t)
