"""Physics tests run in float64 (the caller's choice, made here, never in the library)."""
import os

# pytest runs two worker processes (pyproject.toml): on a GPU, neither may take most of its memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# The suite is mostly XLA compilation: LLVM's optimisation level 0 compiles about a quarter
# faster and changes no result the tests check (subprocesses inherit it). EQLR_TEST_XLA_OPT=1
# keeps XLA's default, to test the optimised pipeline.
if os.environ.get("EQLR_TEST_XLA_OPT") != "1" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

import eqlr_jax  # noqa: E402


@pytest.fixture(scope="session")
def small_config():
    """Tiny but complete model: l_max 1 with both parities, 2 layers, 3 species."""
    return eqlr_jax.NequIPConfig(species=("Na", "Cl", "K"), r_max=4.0, l_max=1, num_features=4,
                                 num_layers=2, radial_mlp_width=8, avg_num_neighbors=10.0,
                                 species_scale=(1.0, 2.0, 0.5), species_shift=(-1.0, -2.0, 0.3))


@pytest.fixture(scope="session")
def pot64(small_config):
    return eqlr_jax.Potential.init(small_config, seed=1, dtype=np.float64)
