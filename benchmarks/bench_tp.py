#!/usr/bin/env python
"""The convolution alone: hand-written backward pass against autodiff of the same forward pass.

Times value-and-gradient (with respect to node features, spherical harmonics and weights) of
one tensor-product convolution on the edges of rattled rock-salt NaCl (r_max 5 Å), 32 channels
with both parities, in blocks of ``--block`` edges as the network runs it, alternating the two
versions in one process. One JSON line per l_max. Compare the two columns of one run only: the
absolute times include writing fresh output buffers (page faults on this VM), which the
network, where the convolution runs inside one compiled program, does not pay.

    python benchmarks/bench_tp.py --natoms 1000 --lmax 1,2 --threads 1
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--lmax", default="1,2")
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--block", type=int, default=4096, help="edges per block (0: all edges at once)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=7)
    a = p.parse_args(argv)
    from bench_sr import pin_cores

    pin_cores(a.threads)
    import e3nn_jax as e3nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    import eqlr_jax
    from eqlr_jax.nn import nequip
    from eqlr_jax.nn import tensor_product as tp
    from eqlr_jax.runtime import tuning

    from bench_sr import build_atoms

    columns = tuning.resolve_scatter_columns("auto")  # the scatter chunks the network uses here

    atoms = build_atoms("nacl", a.natoms)
    cfg = eqlr_jax.NequIPConfig(species=("Na", "Cl"), r_max=5.0)
    g, _ = eqlr_jax.Potential.init(cfg).graph(eqlr_jax.Structure.from_ase(atoms))
    n = g.n_node_capacity
    edges = int(np.sum(np.asarray(g.edge_mask)))
    block = a.block or edges
    snd, rcv = np.asarray(g.senders)[:block], np.asarray(g.receivers)[:block]
    rng = np.random.default_rng(0)
    vec = jnp.asarray(rng.normal(size=(block, 3)), jnp.float32)

    for lmax in map(int, a.lmax.split(",")):
        hidden = nequip.hidden_irreps(eqlr_jax.NequIPConfig(species=("Na", "Cl"), l_max=lmax,
                                                            num_features=a.features))
        sh_irreps = e3nn.Irreps.spherical_harmonics(lmax)
        filt = nequip._gate_input(hidden)
        plan, out_irreps = tp._plan(hidden, sh_irreps, filt)
        x = jnp.asarray(rng.normal(size=(n, hidden.dim)), jnp.float32)
        y = e3nn.spherical_harmonics(sh_irreps, vec, normalize=True, normalization="component").array
        w = jnp.asarray(rng.normal(size=(block, tp.num_weights(hidden, sh_irreps, filt))), jnp.float32)
        probe = jnp.asarray(rng.normal(size=(n, out_irreps.dim)), jnp.float32)

        def make(conv):  # indices and probe are arguments, not constants XLA could fold
            def loss(x, y, w, snd, rcv, probe):
                return jnp.sum(conv(x, y, w, snd, rcv, n, plan) * probe)
            grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
            return lambda x, y, w: grad(x, y, w, jnp.asarray(snd), jnp.asarray(rcv), probe)

        def autodiff_conv(x, y, w, snd, rcv, n, plan):  # the same forward pass, differentiated by JAX
            return tp.sum_into_receivers(tp._messages.fun(x[snd], y, w, plan), rcv, n, columns)

        def hand_written_conv(x, y, w, snd, rcv, n, plan):
            return tp._conv(x, y, w, snd, rcv, n, plan, columns)

        fns = {"hand_written": make(hand_written_conv), "autodiff": make(autodiff_conv)}
        ref = fns["autodiff"](x, y, w)
        got = fns["hand_written"](x, y, w)
        err = max(float(jnp.max(jnp.abs(u - v)) / (jnp.max(jnp.abs(v)) + 1e-30))
                  for u, v in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)))
        times = {k: [] for k in fns}
        for _ in range(a.iters):
            for k, f in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f(x, y, w))
                times[k].append(1e3 * (time.perf_counter() - t0))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(json.dumps(dict(lmax=lmax, natoms=len(atoms), edges_in_block=block, nodes=n,
                              features=a.features, threads=a.threads, paths=len({wb for wb, _ in plan.out_terms}),
                              hand_written_ms=round(med["hand_written"], 3), autodiff_ms=round(med["autodiff"], 3),
                              speedup=round(med["autodiff"] / med["hand_written"], 2), max_rel_diff=err,
                              device=jax.devices()[0].device_kind)), flush=True)


if __name__ == "__main__":
    main()
