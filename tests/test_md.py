"""MD through jax-md (float64): NVE energy conservation with QEq warm starts (CG and dense), NVT
temperature, NPT volume response and smoothness, overflow recovery."""
import dataclasses

import ase
import ase.build
import jax
import numpy as np
import pytest

from eqlr_jax import LRConfig, Potential, Runtime

jax_md = pytest.importorskip("jax_md")
from jax_md import energy as jmd_energy  # noqa: E402

from eqlr_jax.md import Dynamics  # noqa: E402

# An untrained model with smooth fixed parameters: small net, gentle χ (MLP output scaled by
# 0.3 around fixed offsets Na 0, Cl 3 eV/e) and a small short-range energy (scale 0.05 eV).
CFG = LRConfig(species=("Na", "Cl"), r_max=4.5, l_max=1, num_features=4, num_layers_charge=1, num_layers=1,
               radial_mlp_width=8, chi_hidden=8, charge_basis=4, avg_num_neighbors=8.0, hardness_init=(5.0, 5.0),
               chi_reference=(0.0, 3.0), species_scale=(0.05, 0.05), ewald_accuracy=1e-8, qeq_tol=1e-10)


def smooth_potential(cfg=CFG, solver="cg", dtype=np.float64):
    pot = Potential.init(cfg, seed=0, dtype=dtype)
    params = dict(pot.params)
    params["chi"] = dict(params["chi"], w2=params["chi"]["w2"] * 0.3)
    return dataclasses.replace(pot, params=params, runtime=Runtime(qeq_solver=solver))


def repulsion(displacement_fn):
    """A smooth core (Gaussian charges alone would let ions collapse): ε/α (1 − r/σ)^α, r < σ."""
    return jmd_energy.soft_sphere_pair(displacement_fn, sigma=3.0, epsilon=2.0, alpha=3.0)


def na9cl8():
    """Na9Cl8+: a 3x3x2 rock-salt block without one Cl."""
    a = 2.82
    sites = [(i, j, k) for i in range(3) for j in range(3) for k in range(2)]
    numbers = np.array([11 if sum(s) % 2 == 0 else 17 for s in sites])
    keep = np.arange(len(sites)) != np.flatnonzero(numbers == 17)[0]
    atoms = ase.Atoms(numbers=numbers[keep], positions=a * np.array(sites, float)[keep])
    atoms.info["total_charge"] = 1.0
    return atoms


def nacl64(a=5.64):
    atoms = ase.build.bulk("NaCl", "rocksalt", a=a, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    atoms.info["total_charge"] = 0.0
    return atoms


def run(dyn, n_steps):
    state, nbrs = dyn.init()
    chunks = []
    state, nbrs = dyn.run(state, nbrs, n_steps, lambda s, n, c: chunks.append(c))
    rec = {k: np.concatenate([c.records[k] for c in chunks]) for k in chunks[0].records}
    return state, nbrs, rec


def drift_and_fluctuation(e, dt_fs, n_atoms):
    """(slope of a linear fit, eV/atom/ps; standard deviation about it, eV/atom)."""
    t = np.arange(len(e)) * dt_fs * 1e-3
    slope, icpt = np.polyfit(t, e, 1)
    return slope / n_atoms, np.std(e - (slope * t + icpt)) / n_atoms


# the cluster and the periodic cell in the default run, each with one solver; the other two
# (2,000 steps each) are slow: pytest -m slow
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("make,solver", [(na9cl8, "dense"), pytest.param(na9cl8, "cg", marks=_SLOW),
                                         (nacl64, "cg"), pytest.param(nacl64, "dense", marks=_SLOW)],
                         ids=["Na9Cl8+-dense", "Na9Cl8+-cg", "NaCl-64-cg", "NaCl-64-dense"])
def test_nve_conserves_energy(make, solver):
    atoms = make()
    dyn = Dynamics(smooth_potential(solver=solver), atoms, "nve", dt_fs=0.5, temperature_K=300, chunk=500,
                   extra_energy=repulsion)
    state, _, rec = run(dyn, 2000)
    drift, fluct = drift_and_fluctuation(rec["conserved"], 0.5, len(atoms))
    assert abs(drift) < 1e-6, drift      # eV/atom/ps
    assert fluct < 1e-6, fluct            # eV/atom
    assert rec["ekin"].min() > 0.1 * len(atoms) * 300 * 8.617e-5  # it moves, and stays hot
    np.testing.assert_allclose(rec["total_charge"], atoms.info["total_charge"], atol=1e-9)
    q = np.asarray(state.charges)
    assert q[atoms.numbers == 11].mean() > 0.1 and q[atoms.numbers == 17].mean() < -0.1  # ionic
    if solver == "cg":
        assert rec["qeq_residual"].max() < 1e-8
    if solver == "cg" and make is na9cl8:
        # the warm start: fewer CG iterations than a cold solve at the same positions
        cold = dyn.fns.terms_fn(state.md.position, dyn.fns.neighbor_fn.allocate(state.md.position),
                                **dyn._box_kw(state.md))
        assert rec["qeq_iterations"].mean() < 0.8 * int(cold["qeq_iterations"])


def test_nvt_reaches_target_temperature():
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = nacl64()
    thermalize_momenta(atoms, temperature_K=200, rng=np.random.default_rng(0))
    dyn = Dynamics(smooth_potential(), atoms, "nvt", dt_fs=1.0, temperature_K=900, friction_per_fs=0.02,
                   chunk=500, extra_energy=repulsion)
    _, _, rec = run(dyn, 1000)
    temps = 2 * rec["ekin"] / (3 * len(atoms) * 8.617333e-5)
    assert temps[:10].mean() < 400  # starts from the atoms' 200 K velocities
    assert abs(temps[500:].mean() - 900) < 90


def npt_run(a, n_steps, target=0.0, **kw):
    dyn = Dynamics(smooth_potential(solver="dense"), nacl64(a), "npt", dt_fs=0.5, temperature_K=300,
                   pressure_gpa=target, tau_p_fs=200.0, chunk=100, extra_energy=repulsion, **kw)
    state, nbrs = dyn.init()
    p0 = dyn.thermo(state, nbrs)["pressure"]
    return (p0,) + run(dyn, n_steps) + (dyn,)


@pytest.mark.slow
def test_npt_expands_a_compressed_cell_smoothly():
    """Positive pressure, zero target: the volume grows. The extended energy changes smoothly,
    also across the reallocations that pick new k-vector sets (kvector_margin 1 %)."""
    p0, _, _, rec, dyn = npt_run(5.5, 200, kvector_margin=0.01)
    assert p0 > 0.1  # GPa
    assert rec["volume"][-1] > 1.03 * rec["volume"][0]
    assert dyn.reallocations >= 1  # after the first chunk: the cell stretched past the margin
    # a jump J between steps 99 and 100 (the reallocation) would show as |Δ²| ≈ J there; the
    # barostat's own step-to-step noise is ~1e-6 eV
    curvature = np.abs(np.diff(rec["conserved"], 2))
    assert curvature[98:100].max() < 5 * np.median(curvature), (curvature[98:100], np.median(curvature))
    assert curvature.max() < 1e-4


def test_npt_contracts_below_its_target_pressure():
    """Internal pressure below the 2 GPa target: the volume shrinks (and the stress sign is
    right: jax-md's NPT moves the box by the strain derivative of this energy)."""
    p0, _, _, rec, _ = npt_run(5.64, 200, target=2.0)
    assert p0 < 1.0
    assert rec["volume"][-1] < 0.99 * rec["volume"][0]


@pytest.mark.slow  # minutes of MD; pytest -m slow
def test_new_kvector_set_changes_energy_below_accuracy():
    atoms = nacl64()
    dyn = Dynamics(smooth_potential(), atoms, "nve", extra_energy=repulsion)
    R, box = dyn.R0, dyn.box0
    e = [float(dyn.fns.energy_fn(R, dyn.fns.neighbor_fn.allocate(R, box=b), box=box)) for b in (box, 1.04 * box)]
    assert abs(e[1] - e[0]) < 1e-7  # ewald_accuracy 1e-8 of an electrostatic energy of a few eV


@pytest.mark.slow  # the NPT runs above depend on it; pytest -m slow
def test_box_derivative_is_the_strain_derivative():
    """NPT moves the box; its force is the perturbation derivative: they must agree."""
    dyn = Dynamics(smooth_potential(), nacl64(), "npt", extra_energy=repulsion)
    _, nbrs = dyn.init()
    f = lambda R, **kw: dyn.fns.energy_fn(R, nbrs, **kw)  # noqa: E731
    R, box = dyn.R0, dyn.box0
    d_box = jax.grad(lambda s: f(R, box=box * s))(1.0)
    d_strain = jax.grad(lambda e: f(R, box=box, perturbation=1.0 + e))(0.0)
    assert abs(float(d_box - d_strain)) < 1e-10 * abs(float(d_box)) + 1e-12 and abs(float(d_box)) > 1e-2


def compare_capacities(make_dynamics, n_steps):
    out = []
    for multiplier in (1.0, 4.0):
        dyn = make_dynamics(multiplier)
        state, nbrs, rec = run(dyn, n_steps)
        out.append((dyn.reallocations, np.asarray(state.md.position), rec, nbrs))
    (n_small, r_small, rec_small, nb_small), (n_large, r_large, rec_large, _) = out
    # the large lists may still be reallocated once, when a shrinking cell ends the minimum image
    assert n_small >= 1 and n_small > n_large
    assert not bool(nb_small.did_buffer_overflow)
    np.testing.assert_allclose(r_small, r_large, rtol=0, atol=1e-9)
    # a reallocated Miller set may hold a few more k-vectors: terms below the Ewald accuracy (1e-8)
    np.testing.assert_allclose(rec_small["epot"], rec_large["epot"], rtol=0, atol=1e-8)
    return rec_small, nb_small


def test_overflow_recovery_equals_a_large_capacity_run():
    """An expanded Na9Cl8+ squeezed by inward velocities: with capacity_multiplier 1 the
    network's edge list overflows as the cluster contracts, is reallocated and the chunk re-run;
    the trajectory equals one with room to spare."""
    atoms = na9cl8()
    centre = atoms.positions.mean(axis=0)
    atoms.positions = centre + 1.4 * (atoms.positions - centre)
    atoms.set_velocities(-0.03 * (atoms.positions - centre))  # Å per ASE time unit (≈ 10 fs)

    def make(multiplier):
        return Dynamics(smooth_potential(solver="dense"), atoms, "nve", dt_fs=0.5, chunk=50,
                        extra_energy=repulsion, capacity_multiplier=multiplier)

    _, nbrs = compare_capacities(make, 200)
    assert int(nbrs.sr.count) > 2 * 60  # 60 edges at the start: it was squeezed


@pytest.mark.slow
def test_overflow_recovery_periodic_npt():
    """The same for a periodic cell compressed by NPT at 1.5 GPa (both lists)."""
    def make(multiplier):
        return Dynamics(smooth_potential(solver="dense"), nacl64(), "npt", dt_fs=0.5, temperature_K=300,
                        pressure_gpa=1.5, tau_p_fs=400.0, chunk=100, extra_energy=repulsion,
                        capacity_multiplier=multiplier)

    rec, _ = compare_capacities(make, 300)
    assert rec["volume"][-1] < 0.97 * rec["volume"][0]


def test_cell_list_rebuilds_give_the_same_trajectory():
    """Hot NVT in a 216-atom cell: lists rebuilt in the loop through bins (cell list) give the
    trajectory of all-pairs rebuilds."""
    from eqlr_jax.jit_lists import Bins

    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=2)
    pot = Potential.init(dataclasses.replace(CFG, long_range=False, num_layers_charge=0), seed=0, dtype=np.float64)
    out = []
    for use in (True, False):
        dyn = Dynamics(pot, atoms, "nvt", dt_fs=1.0, temperature_K=1500, chunk=30, extra_energy=repulsion,
                       cell_list=use)
        state, nbrs, rec = run(dyn, 60)
        assert isinstance(nbrs.sr_extent, Bins) == use and dyn.reallocations == 0
        out.append((np.asarray(state.md.position), np.asarray(nbrs.reference_position), rec["epot"]))
    assert not np.allclose(out[0][1], dyn.R0)  # rebuilt in the loop
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(out[0][2], out[1][2], rtol=0, atol=1e-9)
