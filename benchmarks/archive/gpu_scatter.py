#!/usr/bin/env python
"""The message scatter on a GPU: XLA's sorted scatter-add against column chunks.

Part 1 times ``jax.ops.segment_sum`` of (327,680, F) messages into 12,288 sorted segments (the
10,648-atom NaCl graph's shape) for F = 704 (l_max 1) and 2976 (l_max 2): sorted indices,
unsorted indices, and the columns in 8 or 31 chunks. Part 2 times the whole energy + forces +
stress call at 10,648 atoms, l_max 2 and 1, with the library's rule
(``Runtime(scatter_columns="auto")``: messages scattered in chunks of at most
``runtime.tuning.GPU_SCATTER_COLUMNS`` columns on GPUs) and without it
(``Runtime(scatter_columns=None)``, one scatter). One JSON line per measurement::

    python benchmarks/archive/gpu_scatter.py > benchmarks/results/gpu/scatter.jsonl
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: bench_sr


def call_ms(f, *args, n=10):
    """Median ms of ``f(*args)`` over n calls after 2 warm-up calls."""
    import jax

    from bench_sr import median_ms

    return round(median_ms(lambda: jax.block_until_ready(f(*args)), 2, n)[0], 3)


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="shrink rows, segments and atoms (to try it on a CPU)")
    a = ap.parse_args()
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_default_matmul_precision", "highest")
    dev = jax.devices()[0].device_kind
    e, n = int(327680 * a.scale), int(12288 * a.scale)
    rcv = jnp.sort(jax.random.randint(jax.random.PRNGKey(0), (e,), 0, n - 1))

    def chunked(k):
        return lambda m, r: jnp.concatenate([jax.ops.segment_sum(p, r, n, indices_are_sorted=True)
                                             for p in jnp.split(m, k, axis=1)], 1)

    variants = {"sorted": lambda m, r: jax.ops.segment_sum(m, r, n, indices_are_sorted=True),
                "unsorted": lambda m, r: jax.ops.segment_sum(m, r, n), "chunks8": chunked(8), "chunks31": chunked(31)}
    for f in (704, 2976):
        m = jax.random.normal(jax.random.PRNGKey(1), (e, f))
        for name, fn in variants.items():
            if f % 31 == 0 or name != "chunks31":
                print(json.dumps(dict(part="scatter", device=dev, rows=e, segments=n, columns=f, variant=name,
                                      ms=call_ms(jax.jit(fn), m, rcv))), flush=True)
        del m

    import eqlr_jax
    from eqlr_jax.runtime import tuning
    from bench_sr import build_atoms, compile_call

    atoms = build_atoms("nacl", int(10000 * a.scale))
    for lmax in (2, 1):
        for columns in ("auto", None):
            runtime = eqlr_jax.Runtime(scatter_columns=columns)
            c, params, g, compile_s = compile_call(atoms, lmax, runtime=runtime)
            print(json.dumps(dict(part="network", device=dev, natoms=len(atoms), lmax=lmax,
                                  scatter_columns=columns, scatter_chunks=tuning.resolve_scatter_columns(columns),
                                  compile_s=round(compile_s, 1), ms=call_ms(c, params, g))), flush=True)


if __name__ == "__main__":
    main()
