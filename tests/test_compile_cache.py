"""The opt-in persistent compilation cache: a second process loads the model's program from disk.

Each run is a subprocess, so the global JAX setting never leaks into the other tests.
"""
import json
import os
import subprocess
import sys

import pytest

import eqlr_jax
from eqlr_jax.compile_cache import default_cache_dir

CHILD = r"""
import json, sys
import jax
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else None)
import ase.build, eqlr_jax
jax.numpy.zeros(3).block_until_ready()  # a JAX computation before the cache is turned on
path = eqlr_jax.enable_compilation_cache(sys.argv[1], min_compile_time_s=0.0)
pot = eqlr_jax.Potential.init(eqlr_jax.NequIPConfig(species=("Na", "Cl"), num_features=4, num_layers=1), seed=0)
atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
atoms.rattle(0.05, seed=0)
graph, _ = pot.graph(eqlr_jax.Structure.from_ase(atoms))
energy = float(pot(graph)["energy"][0])
print(json.dumps(dict(path=path, hits=len(hits), energy=energy)))
"""


def _child(cache):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(cache)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_compiled_model(tmp_path):
    cache = tmp_path / "cache"
    first = _child(cache)
    assert first["path"] == str(cache) and first["hits"] == 0
    assert any(cache.iterdir()), "nothing was written to the cache"
    second = _child(cache)
    assert second["hits"] >= 1
    assert second["energy"] == first["energy"]


def test_unusable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="compilation cache directory"):
        eqlr_jax.enable_compilation_cache(blocker / "cache")


def test_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("EQLR_JAX_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == str(tmp_path / "x")
    monkeypatch.delenv("EQLR_JAX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == os.path.join(str(tmp_path), "eqlr_jax", "xla")
