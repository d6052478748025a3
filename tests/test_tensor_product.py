"""The fast convolution equals e3nn's generic tensor product + weights + scatter (float64)."""
import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqlr_jax.nn.tensor_product import conv_messages


@pytest.mark.parametrize("lmax,x_irreps,filter_out", [
    (1, "4x0e+4x0o+4x1o+4x1e", "4x0e+4x0o+8x0e+4x1o+4x1e"),
    (2, "4x0e+4x0o+4x1o+4x1e+4x2e+4x2o", "4x0e+4x0o+16x0e+4x1o+4x1e+4x2e+4x2o"),
    (1, "4x0e", "4x0e+4x0o+8x0e+4x1o+4x1e"),
    (2, "4x0e+4x1o+4x2e", "4x0e"),
    (3, "3x0e+3x1o+3x2e+3x3o", "3x0e+9x0e+3x1o+3x2e+3x3o"),
])
def test_conv_messages_match_e3nn(lmax, x_irreps, filter_out):
    rng = np.random.default_rng(lmax)
    n, e = 7, 40
    irreps = e3nn.Irreps(x_irreps)
    x = e3nn.IrrepsArray(irreps, jnp.asarray(rng.normal(size=(n, irreps.dim))))
    senders = jnp.asarray(rng.integers(0, n, e))
    receivers = jnp.asarray(np.sort(rng.integers(0, n, e)))
    sh = e3nn.spherical_harmonics(e3nn.Irreps.spherical_harmonics(lmax), jnp.asarray(rng.normal(size=(e, 3))),
                                  normalize=True, normalization="component")
    msg = e3nn.tensor_product(x[senders], sh, filter_ir_out=e3nn.Irreps(filter_out))
    w = jnp.asarray(rng.normal(size=(e, msg.irreps.num_irreps)))
    ref = jax.ops.segment_sum((msg * w).array, receivers, n)
    out = conv_messages(x, sh, w, senders, receivers, n, e3nn.Irreps(filter_out))
    assert out.irreps == msg.irreps.regroup()
    np.testing.assert_allclose(out.array, ref, rtol=0, atol=1e-12)
