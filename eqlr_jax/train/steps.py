"""The jitted training and evaluation steps: loss, gradients, optax update, parameter EMA."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..potential import predict
from ..runtime import Runtime
from .loss import LossWeights, loss_terms, total_loss

__all__ = ["TrainState", "make_optimizer", "Steps", "mesh_for", "shard", "local_shards"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything that changes during training (a pytree: checkpointed with orbax)."""

    params: Any
    ema: Any
    opt_state: Any
    step: jax.Array


def make_optimizer(optimizer: str, clip_norm: float | None):
    """The gradient transformation before the learning rate: clipping, then Adam or AMSGrad
    (the learning rate is applied by the step, so warm-up and plateau drops live on the host)."""
    scale = optax.scale_by_amsgrad() if optimizer == "amsgrad" else optax.scale_by_adam()
    return optax.chain(optax.clip_by_global_norm(clip_norm), scale) if clip_norm else scale


class Steps:
    """Compiled steps for one model config, loss and optimizer; counts its compiles.

    ``shards`` > 1: every training batch is that many sub-batches stacked along a leading axis
    (sharded over devices by the caller, see :func:`shard`); the loss is their mean.

    ``ensemble`` > 0: the state holds that many models (parameters stacked along a leading
    axis) and the steps ``vmap`` over them: every model sees the same batches, and losses and
    terms come back with a leading axis of the ensemble size.
    """

    def __init__(self, config, weights: LossWeights, tx, ema_decay: float, runtime: Runtime = Runtime(),
                 ensemble: int = 0, shards: int = 1):
        self.config, self.weights, self.tx, self.ema_decay, self.runtime = config, weights, tx, ema_decay, runtime
        self.compiles = {"train": 0, "eval": 0}
        self.stress = weights.stress > 0
        self.ensemble, self.shards = ensemble, shards
        if ensemble and shards > 1:
            raise ValueError("ensembles and data-parallel shards cannot be combined yet")
        train, evaluate = self._train, self._eval
        if ensemble:
            train = jax.vmap(train, in_axes=(0, None, None, None, 0))
            evaluate = jax.vmap(evaluate, in_axes=(0, None, None))
        self.train = jax.jit(train, donate_argnums=(0,))
        self.eval = jax.jit(evaluate)

    def init_state(self, params) -> TrainState:
        """The initial state of one model, or (``ensemble``) of a list of parameter trees."""
        if self.ensemble:
            states = [self._init_one(p) for p in params]
            return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
        return self._init_one(params)

    def _init_one(self, params) -> TrainState:
        ema = jax.tree_util.tree_map(jnp.array, params)  # its own buffers: the step donates the state
        return TrainState(params=params, ema=ema, opt_state=self.tx.init(params), step=jnp.zeros((), jnp.int32))

    def _loss(self, params, graph, targets, weights=None):
        out = predict(self.config, params, graph, compute_stress=self.stress, runtime=self.runtime)
        terms = loss_terms(out, targets, self.weights, weights)
        return total_loss(terms, self.weights), terms

    def _sharded_loss(self, params, graphs, targets):
        """The mean over the shards (a leading axis of the batch) of each shard's loss."""
        losses, terms = jax.vmap(self._loss, in_axes=(None, 0, 0))(params, graphs, targets)
        return jnp.mean(losses), jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=0), terms)

    def _train(self, state: TrainState, graph, targets, lr, weights=None):
        """One optimizer step; ``weights``: optional per-reference weights (see ``loss_terms``)."""
        self.compiles["train"] += 1
        if self.shards > 1:
            (loss, terms), grads = jax.value_and_grad(self._sharded_loss, has_aux=True)(state.params, graph, targets)
        else:
            (loss, terms), grads = jax.value_and_grad(self._loss, has_aux=True)(state.params, graph, targets, weights)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = jax.tree_util.tree_map(lambda p, u: p - lr * u.astype(p.dtype), state.params, updates)
        d = self.ema_decay
        ema = jax.tree_util.tree_map(lambda e, p: d * e + (1.0 - d) * p, state.ema, params) if d > 0 else params
        return TrainState(params, ema, opt_state, state.step + 1), loss, terms

    def _eval(self, params, graph, targets):
        self.compiles["eval"] += 1
        loss, terms = self._loss(params, graph, targets)
        return loss, terms


def mesh_for(shards: int, devices: int | None = None):
    """A 1-D device mesh (axis ``"data"``) for ``shards`` sub-batches: ``devices`` devices, or
    the largest number of visible devices that divides ``shards``; None for a single device."""
    available = jax.devices()
    n = devices if devices is not None else max(d for d in range(1, len(available) + 1) if shards % d == 0)
    if n > len(available) or shards % n:
        raise ValueError(f"run.devices={n} must divide run.shards={shards} and be at most the {len(available)} "
                         "visible devices")
    if n == 1:
        return None
    return jax.sharding.Mesh(np.asarray(available[:n]), ("data",))


def local_shards(mesh, shards: int) -> list[int]:
    """The shards this process builds: all of them in one process; with several processes
    (``jax.distributed``), those whose devices belong to this process."""
    if mesh is None or jax.process_count() == 1:
        return list(range(shards))
    per_device = shards // mesh.devices.size
    mine = [k for k, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    return [k * per_device + j for k in mine for j in range(per_device)]


def shard(tree, mesh, shards: int):
    """Stacked sub-batches (leading axis) placed on ``mesh``, one block of the axis per device.
    With several processes, ``tree`` holds this process's :func:`local_shards` only."""
    if mesh is None:
        return tree
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    if jax.process_count() == 1:
        return jax.device_put(tree, spec)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(spec, np.asarray(x), (shards,) + x.shape[1:]), tree)
