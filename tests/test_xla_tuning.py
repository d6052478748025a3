"""The XLA:CPU compile-time tuning eqlr_jax applies at import (eqlr_jax/runtime/xla.py)."""
import os
import subprocess
import sys

import pytest

from eqlr_jax.runtime import xla as _xla


@pytest.fixture
def no_plugins(monkeypatch):
    monkeypatch.setattr(_xla, "_accelerator_plugins", lambda: [])


def test_adds_the_unroll_limit_and_keeps_other_flags(no_plugins):
    assert _xla.xla_flags_with_tuning({}) == _xla.UNROLL_OPTION
    flags = _xla.xla_flags_with_tuning({"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"})
    assert flags.split() == ["--xla_cpu_enable_fast_math=false", _xla.UNROLL_OPTION]


def test_left_alone_on_opt_out_or_user_llvm_options(no_plugins):
    assert _xla.xla_flags_with_tuning({"EQLR_JAX_XLA_TUNING": "0"}) is None
    assert _xla.xla_flags_with_tuning({"XLA_FLAGS": "--xla_backend_extra_options=-foo"}) is None


def test_left_alone_with_an_accelerator_plugin_unless_cpu_is_forced(monkeypatch):
    monkeypatch.setattr(_xla, "_accelerator_plugins", lambda: ["xla_cuda12"])
    assert _xla.xla_flags_with_tuning({}) is None
    assert _xla.xla_flags_with_tuning({"JAX_PLATFORMS": "cpu"}) == _xla.UNROLL_OPTION


def test_import_sets_xla_flags_in_a_fresh_process():
    code = "import os, eqlr_jax, jax.numpy as jnp; float(jnp.ones(2).sum()); print(os.environ.get('XLA_FLAGS'))"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "EQLR_JAX_XLA_TUNING")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    expected = _xla.UNROLL_OPTION if not _xla._accelerator_plugins() else "None"
    assert out.strip() == expected
    env["EQLR_JAX_XLA_TUNING"] = "0"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "None"
