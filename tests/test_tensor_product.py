"""The fast convolution equals e3nn's generic tensor product + weights + scatter (float64):
values, first derivatives, and the reverse-over-reverse second derivatives that force training
and Hessians need (its backward pass is hand-written)."""
import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqlr_jax.nn.tensor_product import conv_messages, num_weights, sum_into_receivers

CASES = [
    (1, "4x0e+4x0o+4x1o+4x1e", "4x0e+4x0o+8x0e+4x1o+4x1e"),
    (2, "4x0e+4x0o+4x1o+4x1e+4x2e+4x2o", "4x0e+4x0o+16x0e+4x1o+4x1e+4x2e+4x2o"),
    (1, "4x0e", "4x0e+4x0o+8x0e+4x1o+4x1e"),
    (2, "4x0e+4x1o+4x2e", "4x0e"),
    (3, "3x0e+3x1o+3x2e+3x3o", "3x0e+9x0e+3x1o+3x2e+3x3o"),
]


def _problem(lmax, x_irreps, filter_out, n=7, e=40, scatter_columns=None):
    rng = np.random.default_rng(lmax + len(x_irreps))
    irreps, filter_out = e3nn.Irreps(x_irreps), e3nn.Irreps(filter_out)
    x = jnp.asarray(rng.normal(size=(n, irreps.dim)))
    vec = jnp.asarray(rng.normal(size=(e, 3)))
    senders = jnp.asarray(rng.integers(0, n, e))
    receivers = jnp.asarray(np.sort(rng.integers(0, n, e)))
    w = jnp.asarray(rng.normal(size=(e, num_weights(irreps, e3nn.Irreps.spherical_harmonics(lmax), filter_out))))

    def messages(impl, x, vec, w):
        sh = e3nn.spherical_harmonics(e3nn.Irreps.spherical_harmonics(lmax), vec, normalize=True,
                                      normalization="component")
        if impl == "e3nn":  # the oracle: generic tensor product, weights, scatter
            msg = e3nn.tensor_product(e3nn.IrrepsArray(irreps, x)[senders], sh, filter_ir_out=filter_out)
            return e3nn.IrrepsArray(msg.irreps.regroup(), jax.ops.segment_sum((msg * w).array, receivers, n))
        return conv_messages(e3nn.IrrepsArray(irreps, x), sh, w, senders, receivers, n, filter_out,
                             scatter_columns)

    return x, vec, w, messages, rng


@pytest.mark.parametrize("lmax,x_irreps,filter_out", CASES)
def test_conv_messages_match_e3nn(lmax, x_irreps, filter_out):
    x, vec, w, messages, _ = _problem(lmax, x_irreps, filter_out)
    out, ref = messages("fast", x, vec, w), messages("e3nn", x, vec, w)
    assert out.irreps == ref.irreps
    np.testing.assert_allclose(out.array, ref.array, rtol=0, atol=1e-12)


def _loss(lmax, x_irreps, filter_out, scatter_columns=None):
    x, vec, w, messages, rng = _problem(lmax, x_irreps, filter_out, scatter_columns=scatter_columns)
    probe = jnp.asarray(rng.normal(size=messages("e3nn", x, vec, w).array.shape))

    def loss(impl):  # a non-linear scalar of the messages
        return lambda x, vec, w: jnp.sum(jnp.sin(messages(impl, x, vec, w).array) * probe)

    return x, vec, w, loss


@pytest.mark.parametrize("lmax,x_irreps,filter_out", CASES)
def test_conv_messages_gradients_match_e3nn(lmax, x_irreps, filter_out):
    x, vec, w, loss = _loss(lmax, x_irreps, filter_out)
    grads = jax.jit(jax.grad(loss("fast"), argnums=(0, 1, 2)))(x, vec, w)
    refs = jax.jit(jax.grad(loss("e3nn"), argnums=(0, 1, 2)))(x, vec, w)
    for g, r in zip(grads, refs):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-11)


_SLOW = pytest.mark.slow  # second derivatives of the oracle at l_max >= 2 compile for ~30 s


@pytest.mark.parametrize("lmax,x_irreps,filter_out", [
    CASES[0], CASES[2], CASES[3],
    pytest.param(*CASES[1], marks=_SLOW), pytest.param(*CASES[4], marks=_SLOW)])
def test_conv_messages_second_derivatives_match_e3nn(lmax, x_irreps, filter_out):
    x, vec, w, loss = _loss(lmax, x_irreps, filter_out)

    # force training: gradient, with respect to the weights, of a loss on d(loss)/d(positions)
    def force_loss(impl):
        return lambda w, x: jnp.sum(jax.grad(loss(impl), argnums=1)(x, vec, w) ** 2)

    for g, r in zip(jax.jit(jax.grad(force_loss("fast"), argnums=(0, 1)))(w, x),
                    jax.jit(jax.grad(force_loss("e3nn"), argnums=(0, 1)))(w, x)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


def test_conv_messages_rejects_mixed_multiplicities():
    sh = e3nn.spherical_harmonics(1, e3nn.IrrepsArray("1o", jnp.ones((2, 3))), True)
    x = e3nn.IrrepsArray("2x0e+3x1o", jnp.ones((2, 11)))
    with pytest.raises(ValueError, match="one multiplicity"):
        conv_messages(x, sh, jnp.ones((2, 4)), jnp.zeros(2, int), jnp.zeros(2, int), 2, "0e+1o")


def test_sum_into_receivers_in_column_chunks():
    rng = np.random.default_rng(3)
    msg = jnp.asarray(rng.normal(size=(50, 23)))
    receivers = jnp.asarray(np.sort(rng.integers(0, 9, 50)))
    ref = np.zeros((9, 23))
    np.add.at(ref, np.asarray(receivers), np.asarray(msg))  # NumPy oracle
    for max_columns in (None, 23, 100, 5, 1):
        np.testing.assert_allclose(sum_into_receivers(msg, receivers, 9, max_columns), ref, rtol=0, atol=1e-12)


def test_conv_messages_with_chunked_scatter_match_e3nn():
    """The GPU code path (messages scattered in column chunks), run on the CPU."""
    lmax, x_irreps, filter_out = CASES[0]
    x, vec, w, messages, _ = _problem(lmax, x_irreps, filter_out, scatter_columns=5)
    np.testing.assert_allclose(messages("fast", x, vec, w).array, messages("e3nn", x, vec, w).array,
                               rtol=0, atol=1e-12)
    x, vec, w, loss = _loss(lmax, x_irreps, filter_out, scatter_columns=5)
    for g, r in zip(jax.grad(loss("fast"), argnums=(0, 1, 2))(x, vec, w),
                    jax.grad(loss("e3nn"), argnums=(0, 1, 2))(x, vec, w)):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-11)
