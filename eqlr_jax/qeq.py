"""Charge equilibration (QEq) of Gaussian charges, with implicit derivatives.

The charges minimise, for every structure g of a flat batch,

    E_QEq(q) = Σ_i (χ_i q_i + ½ J_i q_i²) + E_elec(q)     subject to   Σ_{i∈g} q_i = Q_g,

with E_elec = ½ qᵀ M q the Gaussian-charge Coulomb energy (open boundaries or Ewald, see
:mod:`eqlr_jax.electrostatics.flat`) and J_i > 0. With A = M + diag(J) (symmetric positive
definite) the minimum solves the bordered (KKT) system

    A q + B λ = −χ,    Bᵀ q = Q,        B_ig = 1 if atom i belongs to structure g,

and ∂E_QEq/∂q_i = −λ_g is the chemical potential shared by all atoms of structure g.

Two solvers, one interface (:func:`solve`):

* ``"dense"``: Cholesky of the projected form K = P A P + (I − P) (N × N, block-diagonal over
  the batch; P projects onto the charge redistributions that keep every Σ_g q). Exact.
* ``"cg"``: matrix-free conjugate gradients on A restricted to the constraint surface, with the
  Jacobi preconditioner projected onto it (z = D⁻¹(r − Bμ), μ_g = Σ_g D⁻¹r / Σ_g D⁻¹): an SPD
  iteration that only needs M's mat-vec. CG never sees the indefinite bordered matrix.

Derivatives come from ``jax.lax.custom_linear_solve`` on the symmetric positive-definite form
of the constrained problem (see :func:`solve`): the solve is never differentiated; a derivative of q with respect to anything that enters A or χ
(positions, cell, J, σ, network parameters) costs one more solve of the same system (the adjoint
in reverse mode). Second derivatives (training on forces) work the same way.

Padded atoms (``node_mask`` False) get q = 0 and take no part, and so do structure slots
without atoms. Units: χ in eV/e, J and M in eV/e², q and Q in e, energies in eV.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve

from .electrostatics.flat import FlatOperator, flat_matrix, flat_operator
from .electrostatics.flat_setup import assemble_flat_data, structure_parts

__all__ = ["QEqResult", "QEqConvergenceError", "solve", "qeq_energies", "equilibrate", "SOLVERS"]

SOLVERS = ("dense", "cg")


class QEqConvergenceError(RuntimeError):
    """The CG solve of QEq stopped at ``max_iter`` before reaching its tolerance."""


class QEqResult(NamedTuple):
    """Result of :func:`solve`.

    Attributes:
        charges: (N,) e, 0 on padded atoms.
        chemical_potential: (G,) eV/e, ∂E_QEq/∂q_i (equal for all atoms of a structure).
        residual: () largest deviation of any atom's ∂E_QEq/∂q_i from its structure's
            chemical potential, eV/e (a perfect solve gives 0).
        iterations: () int32, CG iterations (0 for the dense solver).
        converged: () bool, False if CG stopped at ``max_iter`` above its tolerance.
    """

    charges: jax.Array
    chemical_potential: jax.Array
    residual: jax.Array
    iterations: jax.Array
    converged: jax.Array


def _segment(x, seg, n):
    return jax.ops.segment_sum(x, seg, num_segments=n)


class _System(NamedTuple):
    """The constrained system of one batch: A = M + diag(J) (identity on padding) and B."""

    op: FlatOperator
    hardness: jax.Array  # (N,) J on real atoms, 1 on padding

    @property
    def mask(self):
        return self.op.mask

    @property
    def seg(self):
        return self.op.node_graph

    @property
    def n_graph(self):
        return self.op.n_graph

    def a_matvec(self, q):
        return self.op.matvec(q) + self.hardness * q

    def b(self, lam):
        return jnp.where(self.mask, lam[self.seg], 0.0)

    def bt(self, q):
        return _segment(jnp.where(self.mask, q, 0.0), self.seg, self.n_graph)

    def projected(self, r, d):
        """r − Bμ with μ_g = Σ_g r/d / Σ_g 1/d (the d⁻¹-weighted mean; d = 1: orthogonal), and μ."""
        inv = jnp.where(self.mask, 1.0 / d, 0.0)
        den = _segment(inv, self.seg, self.n_graph)
        mu = _segment(r * inv, self.seg, self.n_graph) / jnp.where(den > 0, den, 1.0)
        return r - self.b(mu), mu

    def orth(self, y):
        """Orthogonal projection onto the constraint-free directions (Σ_g y = 0 per structure)."""
        return self.projected(y, jnp.ones_like(y))[0]

    def k_matvec(self, y):
        """K y = P A P y + (I − P) y: SPD, and equal to A on the directions that keep Σ_g q."""
        py = self.orth(y)
        return self.orth(self.a_matvec(py)) + (y - py)


def _dense_solver(system: _System):
    """solve(K, rhs) by Cholesky of the dense K = P A P + (I − P).

    A itself need not be positive definite along a change of the total charge (the slab
    correction of a charged slab is not), but K is: on the directions that keep every Σ_g q,
    A is the Coulomb energy of a neutral redistribution plus J.
    """
    mask, seg, g = system.mask, system.seg, system.n_graph
    a_mat = flat_matrix(system.op) + jnp.diag(system.hardness)
    counts = _segment(mask.astype(a_mat.dtype), seg, g)
    inv_n = jnp.where(mask, 1.0 / jnp.where(counts > 0, counts, 1.0)[seg], 0.0)  # (N,) 1/n_g, 0 on padding
    # A S with S = B diag(1/n) Bᵀ: every entry replaced by its row's mean over the column's
    # structure, in O(N²) (P = I − S, so P A P = A − AS − SA + SAS and I − P = S)
    row_means = _segment(jnp.where(mask[:, None], a_mat.T, 0.0), seg, g).T / jnp.where(counts > 0, counts, 1.0)
    a_s = jnp.where(mask[None, :], row_means[:, seg], 0.0)                  # (N, N)
    s_a_s = _segment(jnp.where(mask[:, None], row_means, 0.0), seg, g) / jnp.where(counts > 0, counts, 1.0)[:, None]
    same = (seg[:, None] == seg[None, :]) & mask[:, None] & mask[None, :]
    s_mat = jnp.where(same, inv_n[None, :], 0.0)
    k_mat = a_mat - a_s - a_s.T + jnp.where(mask[:, None] & mask[None, :], s_a_s[seg][:, seg], 0.0) + s_mat
    factor = cho_factor(k_mat, lower=True)

    def solve(_, rhs):
        return cho_solve(factor, rhs), (jnp.zeros((), jnp.int32), jnp.ones((), bool))

    return solve


def _cg_solver(system: _System, tol, max_iter: int, guess=None):
    """solve(K, rhs) by CG on the constraint surface with the projected Jacobi preconditioner
    z = D⁻¹(r − Bμ) (warm start from ``guess``, a vector of the same kind as the solution).

    D = J + k_e/(√π σ): the hardness plus the Gaussian self-energy, the dominant and always
    positive part of A's diagonal (the background and slab parts of the diagonal can be negative
    and do not act on the constraint surface)."""
    d = system.op.self_energy + system.hardness
    tiny = jnp.finfo(d.dtype).tiny

    def solve(_, rhs):
        y0 = jnp.zeros_like(rhs) if guess is None else system.orth(guess)
        r0, _ = system.projected(rhs - system.a_matvec(y0), d)
        ref, _ = system.projected(rhs, d)
        stop = tol * jnp.maximum(jnp.maximum(jnp.linalg.norm(ref), jnp.linalg.norm(r0)), tiny)
        z0 = r0 / d
        state = (y0, r0, z0, jnp.vdot(r0, z0), jnp.linalg.norm(r0), jnp.zeros((), jnp.int32))

        def cond(s):
            return (s[4] > stop) & (s[5] < max_iter)

        def body(s):
            y, r, p, rz, _, it = s
            ap = system.a_matvec(p)
            pap = jnp.vdot(p, ap)
            alpha = rz / jnp.where(pap > 0, pap, 1.0)
            y = y + alpha * p
            # keep r projected (residual replacement): the same iterates in exact arithmetic, but
            # rounding no longer piles up along B and stalls CG near sqrt(eps)
            r, _ = system.projected(r - alpha * ap, d)
            z = r / d
            rz_new = jnp.vdot(r, z)
            p = z + (rz_new / jnp.where(rz > 0, rz, 1.0)) * p
            return y, r, p, rz_new, jnp.linalg.norm(r), it + 1

        y, _, _, _, norm, it = jax.lax.while_loop(cond, body, state)
        return y + (rhs - system.orth(rhs)), (it, norm <= stop)

    return solve


def solve(op: FlatOperator, chi, hardness, total_charge, *, solver: str = "cg", tol: float = 1e-8,
          max_iter: int = 500, guess=None) -> QEqResult:
    """Equilibrate the charges of a flat batch (pure, jit-able, differentiable).

    Args:
        op: the batch's Coulomb operator (:func:`~eqlr_jax.electrostatics.flat_operator`);
            derivatives with respect to positions, cell and σ flow through it.
        chi: (N,) electronegativities χ, eV/e.
        hardness: (N,) J > 0, eV/e².
        total_charge: (G,) Q of every structure slot, e.
        solver: ``"dense"`` or ``"cg"`` (static).
        tol: CG stopping tolerance, relative to the projected right-hand side (static float);
            raised to 20 machine epsilons of the dtype (float32 cannot do better).
        max_iter: CG iteration limit (static). A solve that stops there reports
            ``converged = False``.
        guess: optional (N,) warm start for CG (e.g. the previous MD step's charges).

    The charges are q = q_Q + y, with q_Q = Q_g/n_g on every atom of structure g and y the
    solution of K y = P(−χ − A q_Q), K = P A P + (I − P), P the orthogonal projection onto
    Σ_g y = 0. K is symmetric positive definite, so ``custom_linear_solve`` differentiates the
    solve by solving K again (the bordered system would have an indefinite matrix).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    dt = chi.dtype
    mask = op.mask
    system = _System(op, jnp.where(mask, jnp.asarray(hardness, dt), 1.0))
    q_tot = jnp.asarray(total_charge, dt)
    counts = _segment(mask.astype(dt), op.node_graph, op.n_graph)
    q_base = system.b(q_tot / jnp.where(counts > 0, counts, 1.0))
    rhs = system.orth(jnp.where(mask, -chi, 0.0) - system.a_matvec(q_base))
    tol_eff = max(float(tol), 20.0 * float(jnp.finfo(dt).eps))
    if solver == "dense":
        primal = transpose = _dense_solver(system)
    else:
        start = None if guess is None else jnp.where(mask, guess, 0.0) - q_base
        primal = _cg_solver(system, tol_eff, int(max_iter), start)
        transpose = _cg_solver(system, tol_eff, int(max_iter))
    y, (it, ok) = jax.lax.custom_linear_solve(system.k_matvec, rhs, primal, transpose, symmetric=True,
                                              has_aux=True)
    q = jnp.where(mask, q_base + y, 0.0)
    # ∂E_QEq/∂q_i = χ_i + (A q)_i: its structure mean is the chemical potential, its spread the residual
    grad = jax.lax.stop_gradient(jnp.where(mask, chi + system.a_matvec(q), 0.0))
    spread, mu = system.projected(grad, jnp.ones_like(grad))
    return QEqResult(charges=q, chemical_potential=mu, residual=jnp.max(jnp.abs(spread)), iterations=it,
                     converged=ok)


def qeq_energies(op: FlatOperator, chi, hardness, q):
    """(E_QEq (G,), E_elec (G,)) in eV: E_elec = ½ qᵀMq and E_QEq = E_elec + Σ (χq + ½Jq²)."""
    e_elec = op.energies(q)
    local = jnp.where(op.mask, chi * q + 0.5 * hardness * q * q, 0.0)
    return e_elec + _segment(local, op.node_graph, op.n_graph), e_elec


def _is_tracer(x):
    return isinstance(x, jax.core.Tracer)


def equilibrate(positions, chi, hardness, sigmas, total_charge, cell=None, accuracy=1e-8):
    """QEq charges of one structure: the user-facing entry point.

    Args:
        positions: (N, 3) Å.
        chi: (N,) electronegativities, eV/e.
        hardness: (N,) or scalar J > 0, eV/e².
        sigmas: (N,) or scalar Gaussian widths, Å.
        total_charge: net charge Q, e.
        cell: None for open boundaries, else (3, 3) lattice vectors as rows (Å), 3-D periodic
            (Ewald with the neutralising background for Q ≠ 0).
        accuracy: relative accuracy of the Ewald sum and relative tolerance of the solve.

    Returns:
        (charges, energy): charges (N,) e with Σq = Q, and **energy = E_QEq** (eV), the
        minimised functional Σ(χq + ½Jq²) + E_elec; E_elec alone is
        ``0.5 * charges @ coulomb_matrix(...) @ charges`` or the ``energy_elec`` output of the
        long-range model.

    Differentiable (``jax.grad``) with respect to chi, hardness and total_charge, and, for open
    boundaries, positions and sigmas. For a periodic cell, positions, cell and sigmas must be
    concrete (the Ewald pair list is built on the host); differentiate a periodic solve with
    :func:`solve` on a :class:`~eqlr_jax.electrostatics.FlatData` instead.

    Raises:
        ValueError: bad shapes, non-positive hardness or negative widths, NaN input.
        QEqConvergenceError: the iterative solve did not converge (systems above 2000 atoms).
    """
    from .electrostatics.validation import check_accuracy, check_cell, check_positions

    concrete = not any(_is_tracer(x) for x in (positions, sigmas, cell))
    pos = jnp.asarray(check_positions(positions) if concrete and not _is_tracer(positions) else positions)
    n = pos.shape[0]
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {pos.shape}")
    dt = pos.dtype if jnp.issubdtype(pos.dtype, jnp.floating) else jnp.zeros(()).dtype
    pos = pos.astype(dt)

    def per_atom(name, x):
        x = jnp.asarray(x, dt)
        if x.ndim == 0:
            x = jnp.full(n, x)
        if x.shape != (n,):
            raise ValueError(f"{name} must be a scalar or have shape ({n},), got {x.shape}")
        if not _is_tracer(x) and not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError(f"{name} contains NaN or inf")
        return x

    chi, hard, sig = per_atom("chi", chi), per_atom("hardness", hardness), per_atom("sigmas", sigmas)
    if not _is_tracer(hard) and not bool(jnp.all(hard > 0)):
        raise ValueError("hardness must be > 0 (eV/e²) for every atom: QEq is then strictly convex")
    if not _is_tracer(sig) and not bool(jnp.all(sig >= 0)):
        raise ValueError("sigmas must be >= 0 (Gaussian widths in Å)")
    check_accuracy(accuracy)
    q_tot = jnp.reshape(jnp.asarray(total_charge, dt), (1,))
    if cell is None:
        parts = structure_parts(np.zeros((n, 3)), np.zeros((3, 3)), np.zeros(3, bool), 0.0)
        cell_arr = jnp.eye(3, dtype=dt)[None]
    else:
        if not concrete:
            raise TypeError("equilibrate: for a periodic cell, positions, cell and sigmas must be concrete"
                            " arrays (not traced); use eqlr_jax.qeq.solve with FlatData to differentiate")
        c = check_cell(cell)
        gamma_max = float(np.sqrt(2.0) * np.max(np.asarray(sig)))
        parts = structure_parts(np.asarray(pos), c, np.ones(3, bool), gamma_max, accuracy)
        cell_arr = jnp.asarray(c, dt)[None]
    # one structure slot plus the padding slot every flat batch has
    data = assemble_flat_data([parts], [0], max(len(parts.i), 1), max(len(parts.miller), 1), 2, np.dtype(dt))
    data = jax.tree_util.tree_map(jnp.asarray, data)
    cell_arr = jnp.concatenate([cell_arr, jnp.eye(3, dtype=dt)[None]])
    solver = "dense" if n <= 2000 else "cg"
    res, e_qeq = _equilibrate(pos, chi, hard, sig, jnp.concatenate([q_tot, jnp.zeros(1, dt)]), cell_arr,
                              data, solver, float(accuracy))
    if not _is_tracer(res.converged) and not bool(res.converged):
        raise QEqConvergenceError(f"QEq did not converge: residual {float(res.residual):.3g} eV/e after"
                                  f" {int(res.iterations)} iterations")
    return res.charges, e_qeq[0]


def _equilibrate_body(pos, chi, hard, sig, q_tot, cell, data, solver, tol):
    node_graph = jnp.zeros(pos.shape[0], jnp.int32)
    mask = jnp.ones(pos.shape[0], bool)
    op = flat_operator(pos, cell, sig, node_graph, mask, data)
    res = solve(op, chi, hard, q_tot, solver=solver, tol=tol)
    return res, qeq_energies(op, chi, hard, res.charges)[0]


_equilibrate = jax.jit(_equilibrate_body, static_argnames=("solver", "tol"))
