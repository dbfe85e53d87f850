"""Builds and runs the job: validation, placement, workers, the loop.

Everything that can be known before a worker starts is checked here, on the driver:
the config, the feature directory against its manifest (columns present and typed as
declared, ids within cardinality, every float value finite, a label with two classes,
a multiclass label's class indices within its classes, splits non-empty and at least a
batch per data shard), resumability of an existing checkpoint, and whether the cluster
can place ``num_workers`` workers. Only then do
workers start: in this process when there is one worker and no cluster address, else
one Ray actor per worker (rank 0's node hosts the ``jax.distributed`` coordinator); a
lost Ray worker or node restarts the group from the newest checkpoint
(``fit_restarting``).
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.features import SPLITS, FeatureContractError, FeatureSet, load_feature_set
from mlbatch.metrics import describe_losses, loss_units
from ray_jobs.common import cluster
from ray_jobs.common.cluster import PlacementError
from ray_jobs.jax import checkpoint, data, loop
from ray_jobs.jax.config import ADDED_RESULT_FIELDS, JaxConfig, fit_batch
from ray_jobs.jax.metrics import metric_fields
from ray_jobs.jax.outputs import TYPE, RunOutputs, commit_model
from mlbatch.errors import WorkerError

log = logging.getLogger(__name__)
PLACEMENT_TIMEOUT_S = 60.0
__all__ = ["PlacementError", "WorkerError", "RayGroup", "check_placement", "run", "validate"]


LOSS_GRACE_S = 60.0  # after a first failure, how long the other workers may take to report


# --- validation (driver side, before any worker) ------------------------------------------
def validate(config: JaxConfig, features_dir: str | Path) -> FeatureSet:
    fs = load_feature_set(features_dir)  # manifest, columns present, label numeric, rows > 0
    for split in SPLITS:
        for path in fs.files(split):
            _check_file(fs, split, path)
        check_values(fs, split)
    shards = config.num_data_shards
    batch_size = fit_batch(config, data.smallest_shard(fs, shards)).batch_size
    for split, batch in (("train", batch_size), ("eval", None)):
        smallest = min(hi - lo for lo, hi in data.shard_bounds(fs.num_rows(split), shards))
        if smallest == 0:
            raise FeatureContractError(f"split {split!r}: {fs.num_rows(split)} rows cannot "
                                       f"fill {shards} data shards")
        if batch is not None and smallest < batch // shards:
            raise FeatureContractError(
                f"split {split!r}: {smallest} rows per data shard, fewer than one batch "
                f"(batch_size {batch} / data_shards {shards} = {batch // shards})")
    return fs


def sized_config(config: JaxConfig, fs: FeatureSet) -> JaxConfig:
    """The config this feature set trains with (``config.fit_batch``: a small train split
    caps the batch and scales the learning rate with it), logged when it differs."""
    fitted = fit_batch(config, data.smallest_shard(fs, config.num_data_shards))
    if fitted is not config:
        log.info("batch_size %d capped to %d so an epoch of %d train rows has at least "
                 "min_steps_per_epoch=%d steps; learning_rate %g scaled to %g",
                 config.batch_size, fitted.batch_size, fs.num_rows("train"),
                 config.min_steps_per_epoch, config.learning_rate, fitted.learning_rate)
    return fitted


def _check_file(fs: FeatureSet, split: str, path: str) -> None:
    """Categorical ids within cardinality, from the footer statistics (the reader has
    checked every column's presence and type)."""
    meta = fs.parquet_file(path).metadata
    schema = meta.schema.to_arrow_schema()
    for f in fs.categorical:
        hi = _column_max(meta, schema.get_field_index(f.name))
        if hi is not None and hi >= f.cardinality:
            raise FeatureContractError(
                f"split {split!r}: feature {f.name!r} has id {hi} >= cardinality "
                f"{f.cardinality} from the manifest in {path}")


def check_values(fs: FeatureSet, split: str) -> None:
    """A full pass over the split's float columns: no NaN or +-inf in a numeric feature or
    the label (every offending column named, with counts and files), and a label a model
    can learn and be scored on: two classes (binary), more than one value (regression
    train split). The driver reads these columns once; the workers read their shards."""
    floats = [f.name for f in fs.numeric] + [fs.label]
    bad: dict[str, list[str]] = {}
    labels = set()
    for path in fs.files(split):
        table = fs.read_table(path, columns=floats)
        for name in floats:
            col = table.column(name)
            if pa.types.is_floating(col.type):
                n_nan = pc.sum(pc.is_nan(col)).as_py() or 0
                n_inf = pc.sum(pc.is_inf(col)).as_py() or 0
                if n_nan or n_inf:
                    bad.setdefault(name, []).append(f"{n_nan} NaN, {n_inf} +-inf in {path}")
        values = np.unique(table.column(fs.label).to_numpy(zero_copy_only=False))
        if fs.task == "multiclass_classification":
            _check_class_indices(fs, split, path, values)
        labels.update(values.tolist()[:3])
    if bad:
        what = "; ".join(f"{'label' if n == fs.label else 'feature'} {n!r}: {', '.join(v)}"
                         for n, v in bad.items())
        raise FeatureContractError(f"split {split!r} has non-finite values ({what}); the "
                                   f"features must be finite to train on")
    _check_label_variety(fs, split, labels)


def _check_class_indices(fs: FeatureSet, split: str, path: str, values: np.ndarray) -> None:
    """A multiclass label holds class indices: whole numbers in [0, K)."""
    k = len(fs.classes)
    bad = values[(values != np.rint(values)) | (values < 0) | (values >= k)]
    if bad.size:
        raise FeatureContractError(
            f"split {split!r}: label {fs.label!r} has {bad.size} value(s) that are not class "
            f"indices in [0, {k}) (classes {list(fs.classes)}), e.g. {bad[0]:g}, in {path}")


def _check_label_variety(fs: FeatureSet, split: str, labels: set) -> None:
    if len(labels) > 1 or (fs.task == "regression" and split != "train"):
        return
    value = next(iter(labels))
    if fs.task == "binary_classification":
        why = ("nothing to learn" if split == "train" else
               "AUC and the eval loss would not measure the model")
        raise FeatureContractError(
            f"split {split!r}: label {fs.label!r} has one class ({value:g}) in all "
            f"{fs.num_rows(split)} rows; binary classification needs both 0 and 1 ({why})")
    raise FeatureContractError(
        f"split {split!r}: label {fs.label!r} has the single value {value:g} in all "
        f"{fs.num_rows(split)} rows; nothing to learn")


def _column_max(meta: pq.FileMetaData, index: int) -> int | None:
    highs = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None
        highs.append(stats.max)
    return max(highs) if highs else None


def check_resumable(blob: bytes, config: JaxConfig, fs: FeatureSet) -> None:
    from ray_jobs.jax.worker import manifest_digest
    meta = checkpoint.read_meta(blob)
    if meta["manifest_digest"] != manifest_digest(fs):
        raise checkpoint.CheckpointError(
            f"the checkpoint was written for a different feature directory (manifest differs "
            f"from {fs.root}); use a new --output")
    old, new = {**ADDED_RESULT_FIELDS, **meta["result_fields"]}, config.result_fields()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise checkpoint.CheckpointError(
            f"cannot resume: config field {diff[0]!r} is {new.get(diff[0])!r}, the checkpoint "
            f"was written with {old.get(diff[0])!r} (differing: {diff}); use a new --output")


def worker_bundle(config: JaxConfig) -> dict[str, float]:
    return config.worker_resources


def cpu_threads(config: JaxConfig) -> int | None:
    """XLA:CPU intra-op threads of each worker process: ``xla_cpu_threads`` on CPU, else
    None (XLA's default pool, as wide as the machine)."""
    if config.platform not in (None, "cpu"):
        return None
    return config.xla_cpu_threads


def worker_env(config: JaxConfig, base: str | None = None) -> dict[str, str]:
    """Environment of a worker process: JAX's platform and the XLA thread flags. A runtime
    env of their own gives Ray workers fresh processes, so these apply before JAX starts
    there. ``base``: XLA_FLAGS to keep (default: this process's)."""
    import os
    env = {"MLBATCH_JAX_WORKER": "1"}
    if config.platform in ("cpu", "tpu"):
        env["JAX_PLATFORMS"] = config.platform
    threads = cpu_threads(config)
    if threads is not None:
        flags = f"intra_op_parallelism_threads={threads}"
        if threads == 1:
            flags = f"--xla_cpu_multi_thread_eigen=false {flags}"
        base = os.environ.get("XLA_FLAGS", "") if base is None else base
        env["XLA_FLAGS"] = f"{base} {flags}".strip()
    return env


def check_placement(config: JaxConfig) -> None:
    """Compares the workers' needs with the cluster (or the enclosing placement group)."""
    cluster.check_placement(
        [worker_bundle(config)] * config.num_workers,
        what=f"num_workers={config.num_workers} workers of {worker_bundle(config)}",
        hint="Lower num_workers / worker_cpus / devices_per_worker or add nodes.")


def trial_worker_bundles(pg, config: JaxConfig) -> list[dict]:
    """A Tune trial's worker bundles: Tune drops the empty head bundle from the placement
    group it creates, so the workers' are the last ``num_workers``, whatever precedes."""
    return pg.bundle_specs[max(len(pg.bundle_specs) - config.num_workers, 0):]


# --- Ray workers ---------------------------------------------------------------------------
def _worker_actor_class():
    import ray

    @ray.remote
    class JaxWorker:
        """One JAX process. Holds a worker.Trainer; jax starts only inside setup()."""

        def coordinator_address(self, host: str | None, port: int | None) -> str:
            """``host`` or this node's address (127.0.0.1 on a local Ray), and a port
            free there; rank 0's coordinator binds exactly this address."""
            ip = host or ray.util.get_node_ip_address()
            if port is None:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((ip, 0))
                    port = s.getsockname()[1]
            return f"{ip}:{port}"

        def setup(self, config: dict, features_dir: str, rank: int, size: int,
                  coordinator: str | None) -> None:
            from ray_jobs.jax.worker import Trainer
            self.trainer = Trainer(config, features_dir, process_id=rank, num_processes=size,
                                   coordinator=coordinator)

        def call(self, method: str, *args) -> Any:
            return getattr(self.trainer, method)(*args)

    return JaxWorker


class RayGroup:
    """``num_workers`` Ray actors, one JAX process each, driven in lockstep."""

    def __init__(self, actors: list, pg, own_pg: bool):
        self.actors, self.pg, self.own_pg = actors, pg, own_pg

    @classmethod
    def start(cls, config: JaxConfig, features_dir: str) -> "RayGroup":
        import ray
        from ray.util import get_current_placement_group, placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundle = worker_bundle(config)
        pg, own = get_current_placement_group(), False
        if pg is not None:
            first = len(pg.bundle_specs) - len(trial_worker_bundles(pg, config))
        else:
            pg = placement_group([bundle] * config.num_workers,
                                 strategy=config.placement_strategy)
            first, own = 0, True
            if not pg.wait(PLACEMENT_TIMEOUT_S):
                remove_placement_group(pg)
                raise PlacementError(f"could not place {config.num_workers} workers of "
                                     f"{bundle} ({config.placement_strategy}) within "
                                     f"{PLACEMENT_TIMEOUT_S:.0f}s")
        env = worker_env(config)
        actor_cls = _worker_actor_class()
        actors = [actor_cls.options(
            num_cpus=config.worker_cpus, num_gpus=config.worker_gpus,
            resources={"TPU": config.devices_per_worker} if config.platform == "tpu" else None,
            runtime_env={"env_vars": env},
            scheduling_strategy=PlacementGroupSchedulingStrategy(pg, first + i)).remote()
            for i in range(config.num_workers)]
        group = cls(actors, pg, own)
        try:
            coordinator = None
            if config.num_workers > 1:
                coordinator = ray.get(actors[0].coordinator_address.remote(
                    config.coordinator_host, config.coordinator_port))
            log.info("starting %d workers (coordinator %s)", len(actors), coordinator)
            group._gather("setup", [a.setup.remote(config.to_dict(), str(features_dir), i,
                                                   len(actors), coordinator)
                                    for i, a in enumerate(actors)])
        except BaseException:
            group.close()
            raise
        return group

    def call(self, method: str, *args) -> list[Any]:
        return self._gather(method, [a.call.remote(method, *args) for a in self.actors])

    def _gather(self, method: str, refs: list) -> list[Any]:
        """Results in rank order; on the first failure stops every worker and raises."""
        import ray
        rank = {r: i for i, r in enumerate(refs)}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - RayTaskError/ActorError wrap anything
                # A peer that died mid-collective fails the survivors first (gloo): wait
                # for the others' outcome before stopping them, to tell a loss apart.
                lost = _is_loss(e) or _any_loss(pending)
                self.close()
                cause = getattr(e, "cause", None) or e
                raise WorkerError(f"worker {rank[ready[0]]} failed in {method}: "
                                  f"{type(cause).__name__}: {cause}", lost=lost) from e
        return ray.get(refs)

    def close(self) -> None:
        import ray
        from ray.util import remove_placement_group
        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self.own_pg and self.pg is not None:
            remove_placement_group(self.pg)
            self.pg = None


def _is_loss(error: BaseException) -> bool:
    """Whether a Ray error means a worker process or node is gone."""
    from ray import exceptions as rx
    return isinstance(error, (rx.RayActorError, rx.NodeDiedError, rx.WorkerCrashedError,
                              rx.ObjectLostError))


def _any_loss(refs: list) -> bool:
    """Whether any of ``refs`` ends in a loss within LOSS_GRACE_S."""
    import ray
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=LOSS_GRACE_S)
    for ref in ready:
        try:
            ray.get(ref)
        except Exception as e:  # noqa: BLE001 - as in _gather
            if _is_loss(e):
                return True
    return False


# --- the job -------------------------------------------------------------------------------
def start_group(config: JaxConfig, features_dir: str, *, use_ray: bool):
    if not use_ray:
        from ray_jobs.jax.worker import LocalGroup, Trainer
        return LocalGroup(Trainer(config, str(features_dir)))
    check_placement(config)
    return RayGroup.start(config, str(features_dir))


def run(config: JaxConfig, features_dir: str | Path, output_dir: str | Path, *,
        address: str | None = None) -> dict[str, Any]:
    """Validates, starts the workers, trains (resuming from --output if possible) and
    commits --output as a ``jax_model`` artifact."""
    fs = validate(config, features_dir)
    config = sized_config(config, fs)
    writer = ArtifactWriter(output_dir, TYPE, job="ray_jobs.jax", config=config.to_dict())
    outputs = RunOutputs(writer.root, config, loss_units(fs.task, fs.label_transform))
    resume = outputs.latest_checkpoint()
    if resume is not None:
        check_resumable(resume, config, fs)
        log.info("resuming from %s", outputs.checkpoints.path(outputs.checkpoints.steps()[-1]))
    use_ray = config.num_workers > 1 or address is not None
    if use_ray:
        cluster.connect(address)
        cluster.check_worker_env([fs.root, writer.root])
    group = start_group(config, fs.root, use_ray=use_ray)
    try:
        writer.claim(resume=True)  # the output guard; keeps this run's own checkpoints
        writer.input_artifact("features", fs.root, "features")
        with writer:  # an exception marks the output failed
            summary, group = fit_restarting(group, config, fs, outputs, resume)
            writer.metrics.update(metric_fields(summary["best"]))
            log.info("best epoch %d: %s", summary["best_epoch"],
                     describe_losses(fs.task, summary["best"], fs.label_transform))
            commit_model(writer, fs, best_epoch=summary["best_epoch"],
                         epochs_run=summary["epochs_run"], restarts=summary["restarts"])
        return summary
    finally:
        group.close()


def fit_restarting(group, config: JaxConfig, fs: FeatureSet, outputs: RunOutputs,
                   resume: bytes | None) -> tuple[dict[str, Any], Any]:
    """``loop.fit``; when a Ray worker or its node is lost, a new worker group (placed
    anew: the lost node's share goes where the cluster has room) continues from the
    newest checkpoint, up to ``max_restarts`` times. The data order and the state are
    the checkpoint's, so the result is the uninterrupted run's."""
    restarts = 0
    while True:
        try:
            summary = loop.fit(group, config, outputs, resume)
            return {**summary, "restarts": restarts}, group
        except WorkerError as e:
            if not e.lost or restarts >= config.max_restarts:
                if e.lost:
                    raise WorkerError(f"{e} (lost; max_restarts={config.max_restarts} "
                                      f"restarts used)", lost=True) from e
                raise
            restarts += 1
            resume = outputs.latest_checkpoint()
            step = outputs.checkpoints.steps()[-1] if resume is not None else 0
            log.warning("worker lost (%s); restart %d of %d from step %d", e, restarts,
                        config.max_restarts, step)
            group.close()
            group = start_group(config, fs.root, use_ray=True)
        except BaseException:
            group.close()
            raise
