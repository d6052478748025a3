"""Runtime: speed options beside the model config, their validation and their "auto" policy."""
import dataclasses

import jax
import numpy as np
import pytest

import eqlr_jax
from eqlr_jax.graph import Capacity
from eqlr_jax.runtime import Runtime, tuning

from helpers import random_triclinic


@pytest.mark.parametrize("field", ["edge_block", "scatter_columns"])
def test_runtime_rejects_bad_sizes(field):
    for bad in (0, -3, "big", 2.5, True):  # bool is an int in Python: refused
        with pytest.raises(ValueError, match=field):
            Runtime(**{field: bad})
    for good in (None, "auto", 1, 4096):
        assert getattr(Runtime(**{field: good}), field) == good


def test_runtime_is_a_hashable_static_value():
    assert Runtime() == Runtime(edge_block="auto", scatter_columns="auto")
    assert hash(Runtime(edge_block=64)) == hash(Runtime(edge_block=64))
    assert Runtime(edge_block=64) != Runtime(edge_block=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Runtime().edge_block = 1


def test_config_has_no_speed_options():
    fields = {f.name for f in dataclasses.fields(eqlr_jax.NequIPConfig)}
    assert not fields & {f.name for f in dataclasses.fields(Runtime)}
    with pytest.raises(TypeError):
        eqlr_jax.NequIPConfig(species=("H",), edge_block=512)


@pytest.mark.parametrize("one, other", [
    (Runtime(edge_block=None), Runtime(edge_block=100)),  # one piece against blocks (with padding)
    (Runtime(), Runtime(edge_block=37, scatter_columns=5)),  # and a chunked scatter, the GPU path, on the CPU
])
def test_two_runtimes_give_the_same_results(pot64, one, other):
    """Energy, forces and stress of a periodic structure: speed options change sums by rounding only."""
    s = random_triclinic(seed=4, n=6)
    cap = Capacity(n_node=16, n_edge=1024, n_graph=2)
    g, _ = pot64.graph(s, capacity=cap, dtype=np.float64)
    a = dataclasses.replace(pot64, runtime=one)(g)
    b = dataclasses.replace(pot64, runtime=other)(g)
    assert float(np.abs(a["forces"]).max()) > 0
    for k in ("energy", "forces", "stress"):
        np.testing.assert_allclose(b[k], a[k], rtol=1e-11, atol=1e-11 * float(np.abs(a[k]).max()))


def test_auto_edge_block_caps_the_number_of_blocks():
    resolve = tuning.resolve_edge_block
    assert resolve(None, 10**6) is None
    assert resolve(123, 10**6) == 123
    assert resolve("auto", 1000, backend="gpu") is None  # blocks only on CPUs
    one, more = tuning.CPU_EDGE_BLOCK_ONE_CORE, tuning.CPU_EDGE_BLOCK
    for cores, base in ((1, one), (2, more), (16, more)):
        assert resolve("auto", 1000, cores=cores, backend="cpu") == base
        assert resolve("auto", 1000, itemsize=8, cores=cores, backend="cpu") == base // 2  # same bytes, float64
        big = base * tuning.MAX_AUTO_BLOCKS + 1  # one edge more than the cap allows at this block size
        block = resolve("auto", big, cores=cores, backend="cpu")
        assert -(-big // block) <= tuning.MAX_AUTO_BLOCKS and block > base
        huge = 10**7
        assert -(-huge // resolve("auto", huge, cores=cores, backend="cpu")) <= tuning.MAX_AUTO_BLOCKS
    if jax.default_backend() == "cpu":  # default: this process's backend and cores
        expected = tuning.CPU_EDGE_BLOCK if tuning.available_cores() > 1 else tuning.CPU_EDGE_BLOCK_ONE_CORE
        assert resolve("auto", 1000) == expected


def test_auto_scatter_columns_chunk_on_gpus_only():
    resolve = tuning.resolve_scatter_columns
    assert resolve("auto", backend="gpu") == tuning.GPU_SCATTER_COLUMNS
    assert resolve("auto", backend="cpu") is None
    assert resolve(None, backend="gpu") is None
    assert resolve(7, backend="cpu") == 7
    assert resolve("auto") == (tuning.GPU_SCATTER_COLUMNS if jax.default_backend() == "gpu" else None)


@pytest.mark.parametrize("kw", [dict(qeq_solver="lu"), dict(qeq_max_iter=0), dict(qeq_dense_max_atoms=True),
                                dict(dense_pairs_max_atoms=-1), dict(ewald_eta_factor=0.0)])
def test_runtime_rejects_bad_long_range_options(kw):
    with pytest.raises(ValueError):
        eqlr_jax.Runtime(**kw)


def test_qeq_method_auto_switches_at_the_threshold():
    rt = eqlr_jax.Runtime(qeq_dense_max_atoms=100)
    assert rt.qeq_method(100) == "dense" and rt.qeq_method(101) == "cg"
    assert eqlr_jax.Runtime(qeq_solver="cg").qeq_method(8) == "cg"
