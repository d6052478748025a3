#!/usr/bin/env python
"""Cost of fresh output buffers in XLA on this machine: one JSON line.

Times a jitted elementwise product of two (25614, 704) float32 arrays (the size of one
layer's tensor-product messages at 1000 NaCl atoms) writing a new output buffer, the same
product writing into a donated (reused) buffer, and a reduction that writes almost nothing.
Run it with and without the malloc tunables to see the page-fault cost:

    python benchmarks/archive/bench_alloc.py
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=100000000000 \\
        python benchmarks/archive/bench_alloc.py
"""
import json
import os
import statistics
import time


def main():
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import jax
    import jax.numpy as jnp
    import numpy as np

    a = jnp.asarray(np.random.default_rng(0).normal(size=(25614, 704)), jnp.float32)
    b = a + 1

    def median_ms(fn, make_args, iters=7):
        ts = []
        for _ in range(iters):
            args = jax.block_until_ready(make_args())
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            ts.append(1e3 * (time.perf_counter() - t0))
        return round(statistics.median(ts[2:]), 2)  # the first calls compile

    row = dict(
        shape=[25614, 704], glibc_tunables=os.environ.get("GLIBC_TUNABLES"),
        new_buffer_ms=median_ms(jax.jit(lambda x, y: x * y), lambda: (a, b)),
        donated_buffer_ms=median_ms(jax.jit(lambda x, y: x * y, donate_argnums=0), lambda: (a + 0, b)),
        row_sum_ms=median_ms(jax.jit(lambda x, y: jnp.sum(x * y, axis=1)), lambda: (a, b)),
        jax=jax.__version__)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
