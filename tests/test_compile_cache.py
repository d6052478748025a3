"""The opt-in persistent compilation cache: a second process loads the model's program from disk.

Each run is a subprocess, so the global JAX setting never leaks into the other tests.
"""
import json
import os
import subprocess
import sys

import pytest

import eqlr_jax
from eqlr_jax.runtime.compile_cache import default_cache_dir

CHILD = r"""
import json, sys
import jax
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else None)
import ase.build, eqlr_jax
cache, mode = sys.argv[1], sys.argv[2]
if mode == "disabled_first":  # the cache off at the first compile, as JAX_ENABLE_COMPILATION_CACHE=false does
    jax.config.update("jax_enable_compilation_cache", False)
jax.jit(lambda x: x * 2.0)(jax.numpy.zeros(3)).block_until_ready()  # JAX has compiled before the cache is on
if mode == "repointed":  # first another directory, used by one compile, then ours
    eqlr_jax.enable_compilation_cache(sys.argv[3], min_compile_time_s=0.0)
    jax.jit(lambda x: x * 3.0)(jax.numpy.zeros(3)).block_until_ready()
path = eqlr_jax.enable_compilation_cache(cache, min_compile_time_s=0.0)
pot = eqlr_jax.Potential.init(eqlr_jax.NequIPConfig(species=("Na", "Cl"), num_features=4, num_layers=1), seed=0)
atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
atoms.rattle(0.05, seed=0)
graph, _ = pot.graph(eqlr_jax.Structure.from_ase(atoms))
energy = float(pot(graph)["energy"][0])
print(json.dumps(dict(path=path, hits=len(hits), energy=energy)))
"""


def _child(cache, mode="plain", *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(cache), mode, *map(str, extra)], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_second_process_loads_the_compiled_model(tmp_path):
    cache = tmp_path / "cache"
    first, _ = _child(cache)
    assert first["path"] == str(cache) and first["hits"] == 0
    assert any(cache.iterdir()), "nothing was written to the cache"
    second, err = _child(cache)
    if second["hits"] == 0 and "Loading XLA:CPU AOT result" in err:
        pytest.skip("this CPU's XLA rejects its own cache entries (openxla/xla#44565)")
    assert second["hits"] >= 1
    assert second["energy"] == first["energy"]


@pytest.mark.parametrize("mode", ["disabled_first", "repointed"])
def test_enabling_takes_effect_whatever_jax_did_before(tmp_path, mode):
    # JAX fixes its cache set-up at the first compile; enable_compilation_cache must reset it
    cache, other = tmp_path / "cache", tmp_path / "other"
    _child(cache, mode, other)
    assert any(cache.iterdir()), "the model's program was not written to the directory given last"


def test_unusable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="compilation cache directory"):
        eqlr_jax.enable_compilation_cache(blocker / "cache")


def test_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(OSError, match="writable by other users"):
        eqlr_jax.enable_compilation_cache(shared)


def test_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("EQLR_JAX_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == str(tmp_path / "x")
    monkeypatch.setenv("EQLR_JAX_CACHE_DIR", "~/y")
    assert default_cache_dir() == os.path.join(os.path.expanduser("~"), "y")
    monkeypatch.delenv("EQLR_JAX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == os.path.join(str(tmp_path), "eqlr_jax", "xla")
