"""The per-worker object: one JAX process's share of the training job.

``Trainer`` sets JAX up (device count, platform, ``jax.distributed.initialize`` with
rank 0 as coordinator when there are several processes), reads this process's data
shards, builds the mesh, the sharded state and the jitted steps, and then serves the
loop (``loop.fit``) through a handful of methods: ``train_steps``, ``evaluate``,
``snapshot`` and ``restore``. Every process runs the same calls in the same order (they
contain collectives); only rank 0 returns checkpoint bytes.

``LocalGroup`` runs one Trainer in this process (no Ray); ``driver.RayGroup`` runs one
per Ray worker. Both expose ``call(method, *args) -> [result per rank]``.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from mlbatch.artifacts.features import FeatureSet, load_feature_set
from ray_jobs.jax import checkpoint, data, metrics, model, steps
from ray_jobs.jax.config import ConfigError, JaxConfig, fit_batch

log = logging.getLogger(__name__)


def setup_jax(config: JaxConfig, process_id: int = 0, num_processes: int = 1,
              coordinator: str | None = None) -> None:
    """Process-level JAX settings; must run before this process's first device query."""
    if config.platform in ("cpu", "tpu"):  # "gpu" is an alias JAX expands to cuda AND rocm
        jax.config.update("jax_platforms", config.platform)
    if config.platform in (None, "cpu") and config.devices_per_worker is not None:
        try:
            jax.config.update("jax_num_cpu_devices", config.devices_per_worker)
        except RuntimeError:  # JAX already runs in this process: the check below decides
            pass
    if num_processes > 1:
        if config.platform in (None, "cpu"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        # Rank 0's coordinator service binds the advertised address only (JAX's default
        # is every interface): 127.0.0.1 for a local Ray.
        jax.distributed.initialize(coordinator_address=coordinator,
                                   coordinator_bind_address=coordinator,
                                   num_processes=num_processes, process_id=process_id)
    if config.platform is not None and jax.default_backend() != config.platform:
        raise ConfigError(f"platform: {config.platform!r} asked for, but JAX's backend here "
                          f"is {jax.default_backend()!r}")
    want = config.devices_per_worker
    if want is not None and jax.local_device_count() != want:
        raise ConfigError(
            f"devices_per_worker: asked for {want}, this process sees "
            f"{jax.local_device_count()} {jax.default_backend()} device(s) (JAX was already "
            f"initialized in this process, or the accelerators are not visible)")


def manifest_digest(fs: FeatureSet) -> str:
    return fs.digest.split(":", 1)[-1][:16]


def label_scale(fs: FeatureSet) -> model.LabelScale:
    """Regression: the train label's mean, std and range (the model learns the
    standardized label, predicts within the range); classification: identity."""
    if fs.task != "regression":
        return model.IDENTITY
    return model.LabelScale(*data.label_stats(fs))


def model_description(config: JaxConfig, fs: FeatureSet,
                      scale: model.LabelScale = model.IDENTITY) -> dict[str, Any]:
    """What a reader of the exported parameters needs to apply them; regression:
    inverse_label(clip(apply * std + mean, low, high), label_transform) with
    ``label_scale`` = {mean, std, low, high} (``model.predict``)."""
    return {"task": fs.task, "label": fs.label,
            "label_scale": scale._asdict() if fs.task == "regression" else None,
            "label_transform": fs.label_transform,
            "numeric": [f.name for f in fs.numeric],
            "categorical": [{"name": f.name, "cardinality": f.cardinality,
                             "rows": model.table_rows(f.cardinality, config.vocab_pad_multiple)}
                            for f in fs.categorical],
            "embedding_dim": config.embedding_dim, "hidden_sizes": list(config.hidden_sizes),
            **({"classes": list(fs.classes)} if fs.classes else {})}


def _local_block(arr: jax.Array) -> np.ndarray:
    """This process's contiguous block of a batch-sharded global array."""
    shards = sorted(arr.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, parts = set(), []
    for s in shards:  # with replication on other axes a block may appear twice
        if (s.index[0].start, s.index[0].stop) not in seen:
            seen.add((s.index[0].start, s.index[0].stop))
            parts.append(np.asarray(s.data))
    return np.concatenate(parts)


def _to_host(x: jax.Array) -> np.ndarray:
    if x.is_fully_addressable:
        return np.asarray(x)
    if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))  # collective


class Trainer:
    """One JAX process of the job (rank ``process_id`` of ``num_processes``)."""

    def __init__(self, config: JaxConfig | dict, features_dir: str, *, process_id: int = 0,
                 num_processes: int = 1, coordinator: str | None = None):
        if isinstance(config, dict):
            from ray_jobs.jax.config import from_dict
            config = from_dict(config)
        self.config, self.process_id, self.num_processes = config, process_id, num_processes
        self.coordinator = coordinator
        setup_jax(config, process_id, num_processes, coordinator)
        self.fs = load_feature_set(features_dir)
        self.mesh = steps.make_mesh()
        # a small train split caps the batch (driver.sized_config; here with the devices
        # JAX sees, known before the driver only on CPU)
        self.config = config = fit_batch(config, data.smallest_shard(
            self.fs, config.num_data_shards), self.mesh.size)
        for name in ("batch_size", "eval_batch_size"):
            if getattr(config, name) % self.mesh.size:
                raise ConfigError(f"{name}: {getattr(config, name)} is not divisible by the "
                                  f"device count {self.mesh.size}")
        shard_kw = dict(data_shards=config.num_data_shards, process_id=process_id,
                        num_processes=num_processes)
        self.train = data.TrainData(self.fs, seed=config.seed, batch_size=config.batch_size,
                                    **shard_kw)
        self.eval = data.EvalData(self.fs, batch_size=config.eval_batch_size, **shard_kw)
        self.scale = label_scale(self.fs)
        self._build()
        self.epoch, self.step_in_epoch = 0, 0
        self._epoch_cache: tuple[int, Any] | None = None
        self._eval_batches: list | None = None
        log.info("rank %d/%d: %d devices (%s), %d train rows here, %d steps/epoch",
                 process_id, num_processes, self.mesh.size, jax.default_backend(),
                 sum(self.train.sizes), self.train.steps_per_epoch)

    def _build(self) -> None:
        cfg, fs = self.config, self.fs
        abstract = jax.eval_shape(lambda k: model.init_params(cfg, fs, k), jax.random.key(0))
        self.optimizer = steps.make_optimizer(cfg, self.train.steps_per_epoch, abstract)
        self.shardings = steps.state_shardings(cfg, self.mesh, self.optimizer, abstract)
        self.train_sh = data.batch_shardings(self.mesh, self.train.rows.take(np.arange(1)))
        self.eval_sh = data.batch_shardings(self.mesh, self.eval.batch(0))
        self.state = steps.make_init(cfg, fs, self.optimizer, self.shardings)(
            jax.random.key(cfg.seed))
        self.train_step = steps.make_train_step(cfg, fs, self.optimizer, self.shardings,
                                                self.train_sh, self.scale)
        self.multi_step = steps.make_train_step(  # compiled at its first call
            cfg, fs, self.optimizer, self.shardings, self.train_sh, self.scale,
            steps=cfg.steps_per_dispatch) if cfg.steps_per_dispatch > 1 else None
        self.eval_step = steps.make_eval_step(fs, self.shardings.params, self.eval_sh,
                                              self.scale)

    # --- what the loop calls -------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"steps_per_epoch": self.train.steps_per_epoch, "num_devices": self.mesh.size,
                "backend": jax.default_backend(), "num_processes": self.num_processes,
                "coordinator": self.coordinator,
                "step": int(self.state.step), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch}

    def train_steps(self, max_steps: int) -> dict[str, Any]:
        """Up to ``max_steps`` steps, stopping at the end of the epoch."""
        if self._epoch_cache is None or self._epoch_cache[0] != self.epoch:
            self._epoch_cache = (self.epoch, self.train.epoch(self.epoch))
        arrays = self._epoch_cache[1]
        n = min(max_steps, self.train.steps_per_epoch - self.step_in_epoch)
        t0, out, k = time.perf_counter(), [], self.config.steps_per_dispatch
        for take in [k] * (n // k if k > 1 else 0) + [1] * (n % k if k > 1 else n):
            self.state, m = self._dispatch(arrays, take)
            out.append(m)
            self.step_in_epoch += take
            if len(out) > self.config.inflight_steps:  # bound the dispatch queue (config.py)
                jax.block_until_ready(out[-1 - self.config.inflight_steps])
        values = jax.device_get(out)  # per dispatch: scalars, or [k] for k steps
        seconds = time.perf_counter() - t0
        result = {"epoch": self.epoch, "first_step": int(self.state.step) - n,
                  "step": int(self.state.step), "seconds": seconds,
                  "examples": n * self.config.batch_size,
                  "metrics": {name: [float(x) for v in values for x in np.ravel(v[name])]
                              for name in (values[0] if n else {})},
                  "epoch_done": self.step_in_epoch == self.train.steps_per_epoch}
        if result["epoch_done"]:
            self.epoch, self.step_in_epoch, self._epoch_cache = self.epoch + 1, 0, None
        return result

    def _dispatch(self, arrays: Any, take: int) -> tuple[steps.TrainState, dict]:
        """One call of the jitted step: the epoch's next batch, or its next ``take``
        batches stacked (``steps_per_dispatch``)."""
        at, cfg = self.step_in_epoch, self.config
        if take == 1:
            host = jax.tree.map(lambda a: a[at], arrays)
            return self.train_step(self.state, data.to_global(host, self.train_sh,
                                                              cfg.batch_size))
        host = jax.tree.map(lambda a: a[at:at + take], arrays)
        batch = data.to_global(host, steps.stacked_shardings(self.train_sh), cfg.batch_size,
                               stacked=True)
        return self.multi_step(self.state, batch)

    def evaluate(self) -> dict[str, float]:
        """Eval metrics (``metrics.eval_metrics``: RMSE / MAE in the label's own units)
        over the whole eval split, all processes."""
        if self._eval_batches is None:
            self._eval_batches = [data.to_global(self.eval.batch(s), self.eval_sh,
                                                 self.config.eval_batch_size)
                                  for s in range(self.eval.steps)]
        outs = [self.eval_step(self.state.params, b) for b in self._eval_batches]
        local = {"pred": np.concatenate([_local_block(o) for o in outs]),
                 "label": self.eval.batches["label"].reshape(-1),
                 "weight": self.eval.batches["weight"].reshape(-1)}
        if self.num_processes > 1:
            local = {k: np.asarray(v).reshape(-1, *np.shape(v)[2:]) for k, v in
                     multihost_utils.process_allgather(local).items()}  # [P, n, (K)]
        return metrics.eval_metrics(self.fs.task, **local,
                                    label_transform=self.fs.label_transform,
                                    classes=self.fs.classes)

    def snapshot(self, loop_meta: dict[str, Any]) -> bytes | None:
        """The whole state as checkpoint bytes (rank 0; other ranks return None)."""
        host = jax.tree.map(_to_host, self.state)
        if self.process_id != 0:
            return None
        arrays = {**checkpoint.flatten(host.params, "params"),
                  **checkpoint.flatten(host.opt_state, "opt_state"),
                  "step": np.asarray(host.step)}
        meta = {"step": int(host.step), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "config": self.config.to_dict(), "result_fields": self.config.result_fields(),
                "manifest_digest": manifest_digest(self.fs),
                "model": model_description(self.config, self.fs, self.scale),
                "loop": loop_meta}
        return checkpoint.encode(arrays, meta)

    def restore(self, blob: bytes) -> dict[str, Any]:
        """Loads checkpoint bytes into this process's sharded state; returns the meta."""
        arrays, meta = checkpoint.decode(blob)
        host = steps.TrainState(
            step=arrays["step"],
            params=checkpoint.unflatten_like(self.state.params, arrays, "params"),
            opt_state=checkpoint.unflatten_like(self.state.opt_state, arrays, "opt_state"))
        self.state = jax.tree.map(
            lambda a, sh: jax.make_array_from_callback(a.shape, sh, lambda idx: a[idx]),
            host, self.shardings)
        self.epoch, self.step_in_epoch = meta["epoch"], meta["step_in_epoch"]
        self._epoch_cache = None
        return meta

    def params(self) -> dict[str, np.ndarray]:
        """Parameters as flat host arrays (``params/...`` names), on every process."""
        return checkpoint.flatten(jax.tree.map(_to_host, self.state.params), "params")

    def close(self) -> None:
        if self.num_processes > 1:
            jax.distributed.shutdown()


class LocalGroup:
    """A single Trainer in this process, behind the worker-group interface."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def call(self, method: str, *args) -> list[Any]:
        return [getattr(self.trainer, method)(*args)]

    def close(self) -> None:
        self.trainer.close()
