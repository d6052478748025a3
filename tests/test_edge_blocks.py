"""Edge blocks (memory-bounded per-edge work) and the radial MLP, float64."""
import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqlr_jax
from eqlr_jax.graph import Capacity
from eqlr_jax.nn.cm import swap_layout
from eqlr_jax.nn.edge_blocks import RadialMLP, _silu, edge_messages, radial_mlp
from eqlr_jax.nn.tensor_product import conv_messages

from helpers import random_triclinic


class _E3nnMLP(nn.Module):
    sizes: tuple

    @nn.compact
    def __call__(self, x):
        return e3nn.flax.MultiLayerPerceptron(self.sizes, act=jax.nn.silu, output_activation=False,
                                              name="radial_mlp")(x)


class _OurMLP(nn.Module):
    sizes: tuple

    @nn.compact
    def __call__(self, x):
        return radial_mlp(RadialMLP(self.sizes, name="radial_mlp")(x.shape[-1], x.dtype), x)


def test_radial_mlp_is_e3nn_mlp():
    """Same parameter tree, same initial values, same function as e3nn's MLP."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(11, 8)))
    ref_mod, our_mod = _E3nnMLP((16, 16, 5)), _OurMLP((16, 16, 5))
    p_ref = ref_mod.init(jax.random.PRNGKey(3), x)
    p_our = our_mod.init(jax.random.PRNGKey(3), x)
    assert jax.tree_util.tree_structure(p_ref) == jax.tree_util.tree_structure(p_our)
    for a, b in zip(jax.tree_util.tree_leaves(p_ref), jax.tree_util.tree_leaves(p_our)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(our_mod.apply(p_ref, x), ref_mod.apply(p_ref, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [7, 16, 40])
def test_edge_blocks_equal_one_piece(block):
    """Blocked sum (uneven split, padding into the last node) = one-piece sum; so are gradients."""
    rng = np.random.default_rng(block)
    n, e = 9, 40
    irreps = e3nn.Irreps("3x0e+3x0o+3x1o+3x1e")
    filt = e3nn.Irreps("3x0e+3x0o+6x0e+3x1o+3x1e")
    x = jnp.asarray(rng.normal(size=(n, irreps.dim)))
    vec = jnp.asarray(rng.normal(size=(e, 3)))
    radial = jnp.asarray(rng.normal(size=(e, 4)))
    senders = jnp.asarray(rng.integers(0, n - 1, e))
    receivers = jnp.asarray(np.sort(rng.integers(0, n - 1, e)))  # node n-1: padding
    n_w = 3 * 10
    kernels = [jnp.asarray(rng.normal(size=s)) for s in ((4, 8), (8, n_w))]

    def total(x, vec, radial, kernels, block):  # component-major in and out
        sh = e3nn.spherical_harmonics("1x0e+1x1o", vec, normalize=True, normalization="component")
        out, out_irreps = edge_messages(kernels, swap_layout(x, irreps, True), irreps, sh.array, sh.irreps, radial,
                                        senders, receivers, n, filt, block)
        out = swap_layout(out, out_irreps, False)
        return out, jnp.sum(jnp.sin(out))

    ref, _ = total(x, vec, radial, kernels, None)
    sh = e3nn.spherical_harmonics("1x0e+1x1o", vec, normalize=True, normalization="component")
    direct = conv_messages(e3nn.IrrepsArray(irreps, x), sh, radial_mlp(kernels, radial), senders, receivers,
                           n, filt)
    np.testing.assert_allclose(ref, direct.array, rtol=1e-12, atol=1e-12)
    out, _ = total(x, vec, radial, kernels, block)
    np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-11)
    grad = jax.jit(jax.grad(lambda *a: total(*a, block)[1], argnums=(0, 1, 2, 3)))
    grad_ref = jax.jit(jax.grad(lambda *a: total(*a, None)[1], argnums=(0, 1, 2, 3)))
    for a, b in zip(jax.tree_util.tree_leaves(grad(x, vec, radial, kernels)),
                    jax.tree_util.tree_leaves(grad_ref(x, vec, radial, kernels))):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_second_derivatives_through_edge_blocks(pot64):
    """Reverse-over-reverse (force training, Hessians) through the blocked edge scan equals the
    one-piece result (it once failed: JAX could not transpose the scan twice through the
    convolution's custom backward pass while that pass held integer residuals)."""
    from eqlr_jax.potential import node_energies

    s = random_triclinic(seed=4, n=6)
    cap = Capacity(n_node=16, n_edge=1024, n_graph=2)
    g, _ = pot64.graph(s, capacity=cap, dtype=np.float64)
    hess = {}
    for block in (100, None):
        runtime = eqlr_jax.Runtime(edge_block=block)

        def energy(pos, runtime=runtime):
            return jnp.sum(node_energies(pot64.config, pot64.params, g, pos, runtime=runtime))

        hess[block] = np.asarray(jax.jit(jax.jacrev(jax.grad(energy)))(g.positions))
    assert np.abs(hess[None]).max() > 0
    np.testing.assert_allclose(hess[100], hess[None], rtol=0, atol=1e-10 * np.abs(hess[None]).max())


@pytest.mark.parametrize("dtype, tol", [(jnp.float64, 1e-13), (jnp.float32, 3e-7)])
def test_silu_is_e3nns_normalised_silu(dtype, tol):
    # float64 computes the sigmoid through tanh (speed): it differs from e3nn's by rounding only
    # (at most ~1e-16 |x|, absolute); both dtypes must match e3nn's function,
    # values and derivatives, over the range the radial MLP sees and far beyond
    x = jnp.linspace(-40.0, 40.0, 20001, dtype=dtype)
    ref = e3nn.normalize_function(jax.nn.silu)
    np.testing.assert_allclose(_silu(x), ref(x), rtol=tol, atol=tol)
    d, dref = jax.vmap(jax.grad(_silu))(x), jax.vmap(jax.grad(ref))(x)
    np.testing.assert_allclose(d, dref, rtol=tol, atol=tol)
    assert _silu(x).dtype == dtype
