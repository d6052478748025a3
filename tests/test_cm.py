"""Component-major layers against e3nn-jax (float64): same parameter trees, same initial values,
same functions. And the whole network against the same network written with e3nn's layers
(``tests/e3nn_reference.py``)."""
import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqlr_jax
from eqlr_jax.nn import cm
from eqlr_jax.nn.nequip import NequIP

from e3nn_reference import ReferenceNequIP


def _cm(a, irreps):
    return cm.swap_layout(jnp.asarray(a), e3nn.Irreps(irreps), True)


def _e3(a, irreps):
    return cm.swap_layout(a, e3nn.Irreps(irreps), False)


class _Ref(nn.Module):
    irreps_out: str
    kind: str
    n_idx: int | None = None

    @nn.compact
    def __call__(self, x, w=None):
        lin = e3nn.flax.Linear(self.irreps_out, num_indexed_weights=self.n_idx, force_irreps_out=True, name="lin")
        return lin(x) if w is None else lin(w, x)


class _Ours(nn.Module):
    irreps_out: str
    irreps_in: str
    n_idx: int | None = None
    as_blocks: bool = False  # lists of blocks in and out

    @nn.compact
    def __call__(self, x, w=None):
        if self.as_blocks:
            x = cm.blocks(x, e3nn.Irreps(self.irreps_in))
        y, irreps = cm.Linear(self.irreps_out, num_indexed_weights=self.n_idx, force_irreps_out=True,
                              out_blocks=self.as_blocks, name="lin")(x, self.irreps_in, w)
        return (cm.concat_blocks(y) if self.as_blocks else y), irreps


# input irreps as the network feeds them: repeated irreps (one block per convolution path) and
# outputs without any input path (forced zeros)
LINEAR_CASES = [
    ("3x0e+3x0o+3x1o+3x1e", "3x0e+3x0o+6x0e+3x1o+3x1e+3x2e"),
    ("3x0e+3x0e+3x0o+3x1o+3x1e+3x1o+3x1e+3x1o", "3x0e+3x0o+6x0e+3x1o+3x1e"),
    ("2x0e", "5x0e"),
]


@pytest.mark.parametrize("irreps_in,irreps_out", LINEAR_CASES)
@pytest.mark.parametrize("kind", ["plain", "indexed", "mixed"])
def test_linear_is_e3nn_linear(irreps_in, irreps_out, kind):
    rng = np.random.default_rng(len(irreps_in) + len(kind))
    n = 6
    x = rng.normal(size=(n, e3nn.Irreps(irreps_in).dim))
    w = {"plain": None, "indexed": jnp.asarray(rng.integers(0, 3, n)),
         "mixed": jnp.asarray(rng.normal(size=(n, 4)))}[kind]
    n_idx = 3 if kind == "indexed" else None
    ref, ours = _Ref(irreps_out, kind, n_idx), _Ours(irreps_out, irreps_in, n_idx)
    x_e3 = e3nn.IrrepsArray(irreps_in, jnp.asarray(x))
    args_ref = (x_e3,) if w is None else (x_e3, w)
    args_our = (_cm(x, irreps_in),) if w is None else (_cm(x, irreps_in), w)
    p_ref = ref.init(jax.random.PRNGKey(1), *args_ref)
    p_our = ours.init(jax.random.PRNGKey(1), *args_our)
    assert jax.tree_util.tree_structure(p_ref) == jax.tree_util.tree_structure(p_our)
    for a, b in zip(jax.tree_util.tree_leaves(p_ref), jax.tree_util.tree_leaves(p_our)):
        np.testing.assert_array_equal(a, b)
    y_ref = ref.apply(p_ref, *args_ref)
    y, irreps = jax.jit(ours.apply)(p_ref, *args_our)
    assert irreps == y_ref.irreps
    np.testing.assert_allclose(_e3(y, irreps), y_ref.array, rtol=1e-12, atol=1e-12)
    y_blocks, _ = jax.jit(_Ours(irreps_out, irreps_in, n_idx, as_blocks=True).apply)(p_ref, *args_our)
    np.testing.assert_allclose(y_blocks, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("irreps", ["3x0e+2x0o+5x0e+2x1o+3x1e", "4x0e+3x0o", "2x0e+1x0o+2x0e+1x1o+1x2e",
                                    "2x0e+2x0o+1x1e+1x2o"])
def test_gate_is_e3nn_gate(irreps):
    x = np.random.default_rng(len(irreps)).normal(size=(5, e3nn.Irreps(irreps).dim))
    ref = e3nn.gate(e3nn.IrrepsArray(irreps, jnp.asarray(x)), even_act=jax.nn.silu, odd_act=jnp.tanh,
                    even_gate_act=jax.nn.silu, odd_gate_act=jnp.tanh)
    y, out_irreps = cm.gate(_cm(x, irreps), e3nn.Irreps(irreps))
    assert out_irreps == ref.irreps
    np.testing.assert_allclose(_e3(y, out_irreps), ref.array, rtol=1e-12, atol=1e-12)
    y_blocks, irreps_blocks = cm.gate(cm.blocks(_cm(x, irreps), e3nn.Irreps(irreps)), irreps, out_blocks=True)
    assert irreps_blocks == out_irreps
    assert [b.shape for b in y_blocks] == [(5, ir.dim, mul) for mul, ir in out_irreps]
    np.testing.assert_allclose(cm.concat_blocks(y_blocks), y, rtol=1e-12, atol=1e-12)


def test_activation_constants_are_e3nns():
    """cm's hard-coded normalisation constants equal e3nn.normalize_function's (float64)."""
    for kind, phi in (("even", jax.nn.silu), ("odd", jnp.tanh)):
        x = jnp.asarray([0.3, 1.7], jnp.float64)
        expected = np.asarray(e3nn.normalize_function(phi)(x) / phi(x))
        np.testing.assert_allclose(cm._NORM[kind], expected, rtol=1e-15)


def test_gate_needs_enough_scalars():
    with pytest.raises(ValueError, match="fewer scalars"):
        cm.gate(jnp.ones((2, 7)), e3nn.Irreps("1x0e+2x1o"))


@pytest.mark.parametrize("l_max,parity,n_inputs", [
    (1, True, 2), pytest.param(2, True, 0, marks=pytest.mark.slow), pytest.param(2, False, 1, marks=pytest.mark.slow)])
def test_network_is_the_e3nn_network(l_max, parity, n_inputs):
    """Same parameter tree and initial values as the e3nn-layer network; same per-atom outputs
    and the same gradients with respect to the edge vectors (float64)."""
    rng = np.random.default_rng(l_max)
    n, e = 7, 30
    cfg = eqlr_jax.NequIPConfig(species=("Na", "Cl", "H"), l_max=l_max, parity=parity, num_features=4,
                                num_layers=3, radial_mlp_width=8, n_node_inputs=n_inputs, n_outputs=2)
    vec = jnp.asarray(rng.normal(size=(e, 3)) * 1.5)
    species = jnp.asarray(rng.integers(0, 3, n))
    senders = jnp.asarray(rng.integers(0, n, e))
    receivers = jnp.asarray(np.sort(rng.integers(0, n, e)))
    mask = jnp.asarray(np.arange(e) < e - 3)
    inputs = jnp.asarray(rng.normal(size=(n, n_inputs))) if n_inputs else None
    args = (species, senders, receivers, mask, inputs)
    ours, ref = NequIP(cfg, eqlr_jax.Runtime(edge_block=None)), ReferenceNequIP(cfg)
    p_our = jax.jit(ours.init)(jax.random.PRNGKey(0), vec, *args)  # jit: eager e3nn is slow
    p_ref = jax.jit(ref.init)(jax.random.PRNGKey(0), vec, *args)
    assert jax.tree_util.tree_structure(p_our) == jax.tree_util.tree_structure(p_ref)
    for a, b in zip(jax.tree_util.tree_leaves(p_our), jax.tree_util.tree_leaves(p_ref)):
        np.testing.assert_array_equal(a, b)
    p = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p_ref)
    out, h = jax.jit(ours.apply)(p, vec, *args)
    out_ref, h_ref = jax.jit(ref.apply)(p, vec, *args)
    np.testing.assert_allclose(out, out_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.array, h_ref.array, rtol=1e-10, atol=1e-12)
    assert float(jnp.std(out[:, 0])) > 1e-3  # the comparison is not between two constants
    g = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(ours.apply(p, v, *args)[0]))))(vec)
    g_ref = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(ref.apply(p, v, *args)[0]))))(vec)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-12)
