"""Multi-host training (``run.distributed=true``) on one machine: two processes with one CPU
device each, coordinated by ``jax.distributed`` from (faked) SLURM variables, train exactly as
one process with two devices does."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import train_fixtures as tf

import eqlr_jax

from test_train import SMALL_MODEL, jax_leaves

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_job_id() -> str:
    """A SLURM job id whose coordinator port (JAX: 61440 + id mod 4096) is free now."""
    for job in range(4096):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 61440 + job))
                return str(job)
            except OSError:
                continue
    pytest.skip("no free port for the coordinator")


@pytest.mark.slow  # three training processes; pytest -m slow
def test_two_processes_train_as_one_process_with_two_devices(tmp_path):
    data = tf.write(tmp_path / "mol.xyz", tf.molecules(12))
    args = [f"data.path={data}", "run.epochs=2", "run.batch_size=2", "run.shards=2", "run.capacity_levels=1",
            "run.progress=false", "run.dtype=float32", *SMALL_MODEL]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "OMPI", "XLA_FLAGS"))}
    base.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(p for p in (ROOT, base.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "eqlr_jax.cli", "train", os.devnull]
    one = subprocess.run(cmd + args + [f"run.out_dir={tmp_path / 'one'}"], capture_output=True, text=True, timeout=600,
                         env=dict(base, XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert one.returncode == 0, one.stderr[-3000:]
    job = _free_job_id()
    procs = [subprocess.Popen(cmd + args + ["run.distributed=true", f"run.out_dir={tmp_path / 'two'}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(base, SLURM_JOB_ID=job, SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
                                       SLURM_PROCID=str(k), SLURM_LOCALID=str(k), SLURM_STEP_NUM_NODES="1"))
             for k in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    a = eqlr_jax.load(tmp_path / "one" / "final.eqlr")
    b = eqlr_jax.load(tmp_path / "two" / "final.eqlr")
    for x, y in zip(jax_leaves(a.params), jax_leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
