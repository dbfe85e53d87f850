"""Optimizer, shardings and the jitted train/eval steps.

``train_step(state, batch) -> (state, metrics)`` is one ``jax.jit`` with explicit
in/out shardings; the state (argument 0) is donated. ``make_train_step(..., steps=k)``
scans the same step over k stacked batches in one call (``steps_per_dispatch``). By default parameters and
optimizer state are replicated and the batch is sharded over the mesh's ``data`` axis
(data parallel: XLA all-reduces the gradients). With ``shard_embeddings`` the large
tables (and their optimizer moments) are sharded by rows over the same axis, FSDP
style: each device holds ``rows / n_devices`` rows, XLA gathers what a batch looks up
and reduce-scatters the table gradients.

Data parallel over several devices the step is one ``jax.shard_map`` over ``data``: each
device differentiates the loss of its slice of the batch, and the gradient pytree, the
loss and its parts are raveled into one vector and averaged in ONE all-reduce
(``fused_gradients``), instead of the one all-reduce per parameter leaf XLA emits for
the plain jit (about 40 per step, each a gloo round trip between processes). The mean of
the equal-sized slices' mean losses is the batch's mean loss, so the result equals the
single-device step up to float rounding.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mlbatch.artifacts.features import FeatureSet
from ray_jobs.jax import model
from ray_jobs.jax.checkpoint import path_keys
from ray_jobs.jax.config import JaxConfig


class TrainState(NamedTuple):
    step: jax.Array  # i32 scalar
    params: model.Params
    opt_state: optax.OptState


def make_mesh(devices: list | None = None) -> Mesh:
    """A 1-D 'data' mesh over all devices, ordered process by process."""
    devices = devices if devices is not None else jax.devices()
    ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(ordered), ("data",))


def make_schedule(config: JaxConfig, steps_per_epoch: int) -> optax.Schedule:
    """Constant, cosine decay to 0 over the run, or exponential per epoch; + linear warmup."""
    lr, warmup = config.learning_rate, config.warmup_steps
    if config.schedule == "constant":
        base = optax.constant_schedule(lr)
    elif config.schedule == "exponential":
        base = optax.exponential_decay(lr, transition_steps=steps_per_epoch,
                                       decay_rate=config.decay_rate)
    else:
        base = optax.cosine_decay_schedule(
            lr, max(config.epochs * steps_per_epoch - warmup, 1))
    if warmup:
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), base], [warmup])
    return base


def make_optimizer(config: JaxConfig, steps_per_epoch: int,
                   params: model.Params) -> optax.GradientTransformation:
    lr = make_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        opt = optax.adam(lr)
    elif config.optimizer == "adamw":
        opt = optax.adamw(lr, weight_decay=config.weight_decay,
                          mask=model.weight_mask(params))
    else:
        opt = optax.sgd(lr, momentum=config.momentum)
    if config.grad_clip_norm:
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
    return opt


def param_specs(config: JaxConfig, params: model.Params, num_devices: int) -> Any:
    """PartitionSpecs: replicated, except large tables' rows with shard_embeddings."""
    def spec(path, leaf):
        names = [getattr(k, "key", None) for k in path]
        is_table = "categorical" in names or "embed" in names
        if (config.shard_embeddings and is_table and leaf.shape[0] >= config.shard_min_rows
                and leaf.shape[0] % num_devices == 0):
            return P("data", *([None] * (len(leaf.shape) - 1)))
        return P()
    return jax.tree_util.tree_map_with_path(spec, params)


def state_shardings(config: JaxConfig, mesh: Mesh, optimizer: optax.GradientTransformation,
                    abstract_params: model.Params) -> TrainState:
    """Shardings of the whole state; optimizer moments follow their parameter."""
    specs = param_specs(config, abstract_params, mesh.size)
    to_sharding = lambda s: NamedSharding(mesh, s)  # noqa: E731
    param_sh = jax.tree.map(to_sharding, specs, is_leaf=lambda x: isinstance(x, P))
    replicated = NamedSharding(mesh, P())
    by_path = {path_keys(p): (leaf.shape, sh) for (p, leaf), sh in zip(
        jax.tree_util.tree_flatten_with_path(abstract_params)[0], jax.tree.leaves(param_sh))}

    def follow_param(path, leaf):  # moments like mu/nu end with their parameter's path
        keys = path_keys(path)
        for i in range(len(keys)):
            shape, sh = by_path.get(keys[i:], (None, None))
            if sh is not None and shape == leaf.shape:
                return sh
        return replicated
    opt_sh = jax.tree_util.tree_map_with_path(
        follow_param, jax.eval_shape(optimizer.init, abstract_params))
    return TrainState(step=replicated, params=param_sh, opt_state=opt_sh)


def make_init(config: JaxConfig, feature_set: FeatureSet,
              optimizer: optax.GradientTransformation,
              shardings: TrainState) -> Callable[[jax.Array], TrainState]:
    """jit'ed state initialization, created directly in its sharded layout."""
    def init(key):
        params = model.init_params(config, feature_set, key)
        return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))
    return jax.jit(init, out_shardings=shardings)


def unpack(batch: dict[str, Any], names: tuple[str, ...]) -> model.Batch:
    """The packed device batch (data.Columns) -> the model's per-feature batch."""
    out = {k: v for k, v in batch.items() if k != "ids"}
    out["categorical"] = {n: batch["ids"][:, i] for i, n in enumerate(names)}
    return out


def fused_gradients(config: JaxConfig, shardings: TrainState) -> bool:
    """The one-all-reduce step applies: several devices, every parameter replicated."""
    return config.fuse_gradients and shardings.step.mesh.size > 1 and all(
        sh.is_fully_replicated for sh in jax.tree.leaves(shardings.params))


def make_train_step(config: JaxConfig, feature_set: FeatureSet,
                    optimizer: optax.GradientTransformation, shardings: TrainState,
                    batch_sh: Any, scale: model.LabelScale = model.IDENTITY,
                    steps: int = 1) -> Callable:
    """``(state, batch) -> (state, metrics)``; with ``steps`` > 1, ``(state, batches)`` for
    a stack of that many batches ``[steps, batch, ...]`` -> metrics stacked ``[steps]``: a
    ``lax.scan`` of the same step (each still its own gradient all-reduce and update), so
    the host dispatches, and the processes meet the host, once per ``steps`` steps."""
    mesh = shardings.step.mesh
    replicated = NamedSharding(mesh, P())
    task, names = feature_set.task, tuple(f.name for f in feature_set.categorical)
    grad_fn = jax.value_and_grad(model.loss, has_aux=True)
    loss_kw = {"task": task, "l2_wide": config.l2_wide, "l2_deep": config.l2_deep,
               "scale": scale}

    def update(state: TrainState, grads: model.Params, total, aux):
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": total, **aux, "grad_norm": optax.global_norm(grads)}
        return TrainState(state.step + 1, params, opt_state), metrics

    def train_step(state: TrainState, batch: dict[str, Any]):
        (total, aux), grads = grad_fn(state.params, unpack(batch, names), **loss_kw)
        return update(state, grads, total, aux)

    def shard_step(state: TrainState, batch: dict[str, Any]):
        # Differentiating a per-device ("varying") copy of the parameters keeps the
        # gradients local: no implicit per-leaf psum; the one pmean below reduces them.
        local = jax.lax.pcast(state.params, "data", to="varying")
        (total, aux), grads = grad_fn(local, unpack(batch, names), **loss_kw)
        flat, unravel = ravel_pytree((grads, total, aux))
        grads, total, aux = unravel(jax.lax.pmean(flat, "data"))
        return update(state, grads, total, aux)

    fused = fused_gradients(config, shardings)
    step, batch_spec = (shard_step if fused else train_step), P("data")
    if steps > 1:  # k steps, one dispatch: the same step, scanned over a stack of batches
        one_step = step

        def step(state: TrainState, batches: dict[str, Any]):
            return jax.lax.scan(one_step, state, batches)
        batch_spec, batch_sh = P(None, "data"), stacked_shardings(batch_sh)
    if fused:
        step = jax.shard_map(step, mesh=mesh, in_specs=(P(), batch_spec), out_specs=(P(), P()))
    return jax.jit(step, in_shardings=(shardings, batch_sh),
                   out_shardings=(shardings, replicated), donate_argnums=0)


def stacked_shardings(batch_sh: Any) -> Any:
    """A batch's shardings -> those of a stack of batches [steps, batch, ...]."""
    return jax.tree.map(lambda sh: NamedSharding(sh.mesh, P(None, *sh.spec)), batch_sh)


def make_eval_step(feature_set: FeatureSet, param_sh: Any, batch_sh: Any,
                   scale: model.LabelScale = model.IDENTITY) -> Callable:
    """(params, batch) -> predictions (``model.predict``: probabilities, or values in the
    stored label's units), sharded like the batch; the eval metrics are computed from
    them on the host (``metrics.eval_metrics``)."""
    task, names = feature_set.task, tuple(f.name for f in feature_set.categorical)

    def eval_step(params, batch):
        return model.predict(params, unpack(batch, names), task, scale)

    return jax.jit(eval_step, in_shardings=(param_sh, batch_sh),
                   out_shardings=batch_sh["label"])
