"""Builds and runs the distributed XGBoost job (the driver layer).

Order matters: validate the config and the feature directory, connect to Ray, resolve
and check the worker layout -- all before the first worker starts -- then train with
Ray Train V2's ``XGBoostTrainer`` (the per-worker function is ``worker.py``), pick the
best round from the history the last checkpoint carries, score the saved model on the whole eval split and
write the files (see ``artifacts.py``); ``artifact.json`` comes last, as the commit.
The output is claimed (``ArtifactWriter.claim``, the one output guard) once the input
is known to be good, before Ray is contacted; a failed run leaves its reason in the
uncommitted directory.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlbatch import storage
from mlbatch.artifacts import ArtifactWriter, write_json
from mlbatch.artifacts.features import FeatureSet
from mlbatch.labels import inverse_label
from mlbatch.metrics import (EARLY_STOPPING_METRICS, confusion_matrix, describe_losses,
                             loss_units, split_losses, task_metrics)
from ray_jobs.common import cluster as ray_cluster
from ray_jobs.xgboost import artifacts, cluster, data, worker
from ray_jobs.xgboost.config import TASK_PARAMS, ConfigError, Layout, XGBoostConfig

logger = logging.getLogger(__name__)

# The run's Ray Train checkpoints, under the output until the model is written.
CHECKPOINT_DIR = "_train_checkpoints"
# Ray Train V2's controller collects the workers' reports once per poll, and a worker's
# next report waits until its previous one was collected (a queue of one); the default
# poll interval is 2 s (docs/xgboost.md, "What a report costs"). A value the user set wins.
REPORT_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
REPORT_POLL_S = "0.2"
# Ray Train gives a new worker group 60 s to start, then tears it down and starts over,
# forever; on a loaded machine a worker process alone can take longer to start (seen in
# the Tune benchmark at load 30 on 2 cores). The job waits for the resources itself
# (--placement-timeout) before the trainer starts, so this only bounds process start-up.
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
START_TIMEOUT_S = "600"
# Ray Train starts a PreemptionWatcher actor (one more Python process, ~1.7 s of CPU on
# this machine's cores) per worker group to learn early that a node is being drained;
# on the private local Ray the job starts itself nothing drains the one node, so there
# it is off (docs/xgboost.md, "Where the time goes"). A value the user set wins.
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def early_stopping_metric(task: str, declared: str = "eval_loss") -> tuple[str, str]:
    """(history key, mode) of the declared early-stopping metric (``mlbatch.metrics``'
    ``eval_loss``, in label units: ``eval-label_loss``; or ``objective_loss``: XGBoost's
    own loss in the model's space, e.g. ``eval-rmse``) -- the best round's metric."""
    if declared == "eval_loss":
        return f"eval-{worker.LABEL_LOSS}", "min"
    if declared != "objective_loss":
        raise ConfigError(f"early_stopping_metric {declared!r}: expected one of "
                          f"{EARLY_STOPPING_METRICS}")
    spec = TASK_PARAMS[task]
    return f"eval-{spec['eval_metric'][-1]}", spec["mode"]


def resolve_layout(config: XGBoostConfig) -> Layout:
    """Flags where given; otherwise the default layout (``cluster.default_layout``: on
    each node one actor per CPU, up to a cap). With only --num-actors, the CPUs are shared
    out (cluster CPUs / actors, at most one node's worth)."""
    if config.num_actors is not None and config.cpus_per_actor is not None:
        return Layout(config.num_actors, config.cpus_per_actor, config.gpus_per_actor)
    if config.num_actors is None:
        return cluster.default_layout(config.gpus_per_actor, config.cpus_per_actor)
    total = int(sum(n["Resources"].get("CPU", 0) for n in ray_cluster.alive_nodes()))
    node_max = int(max(n["Resources"].get("CPU", 0) for n in ray_cluster.alive_nodes()))
    cpus = max(1, min(node_max, total // config.num_actors))
    return Layout(config.num_actors, cpus, config.gpus_per_actor)


def train_spec(config: XGBoostConfig, fs: FeatureSet, params: dict, layout: Layout, *,
               callbacks: Sequence = (), alias: str | None = None,
               report_every: int | None = None) -> worker.TrainSpec:
    """The workers' part of the job: booster params with one XGBoost thread per CPU of a
    worker, the metric of the best round, how often to report (and checkpoint)."""
    metric, mode = early_stopping_metric(fs.task, config.early_stopping_metric)
    return worker.TrainSpec(
        features=fs.root, params={**params, "nthread": layout.cpus_per_actor},
        num_boost_round=config.num_boost_round,
        early_stopping_rounds=config.early_stopping_rounds,
        report_every=report_every or config.checkpoint_frequency, metric=metric, mode=mode,
        alias=alias, callbacks=tuple(callbacks), task=fs.task,
        label_transform=fs.label_transform,
        objective_metric=early_stopping_metric(fs.task, "objective_loss")[0])


def make_trainer(spec: worker.TrainSpec, layout: Layout, *, name: str, storage_uri: str,
                 max_failures: int, callbacks: Sequence = (), storage_filesystem=None):
    """Ray Train V2's ``XGBoostTrainer`` running ``worker.train_fn_per_worker``: one worker
    per layout actor, checkpoints under ``storage_uri``/``name`` (any URI, or a path in
    ``storage_filesystem``; a rerun with the same name and storage resumes from its
    latest checkpoint), restarts of the worker group after a worker failure up to
    ``max_failures`` (-1: no limit)."""
    os.environ.setdefault(REPORT_POLL_ENV, REPORT_POLL_S)
    os.environ.setdefault(START_TIMEOUT_ENV, START_TIMEOUT_S)
    if ray_cluster.started_local():
        os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")
    import ray.train
    from ray.train.xgboost import XGBoostTrainer

    if storage_filesystem is None and storage.is_remote(storage_uri):
        loc = storage.locate(storage_uri)
        storage_uri, storage_filesystem = loc.path, loc.fs
    resources = {"CPU": layout.cpus_per_actor}
    if layout.gpus_per_actor:
        resources["GPU"] = layout.gpus_per_actor
    return XGBoostTrainer(
        worker.train_fn_per_worker, train_loop_config=spec.to_dict(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=layout.num_actors, use_gpu=layout.gpus_per_actor > 0,
            resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_uri, storage_filesystem=storage_filesystem,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=list(callbacks)))


def fit(trainer) -> tuple[Any, worker.RunState]:
    """Runs the trainer; (booster, RunState) of its last checkpoint."""
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("training ended without a checkpoint")
    with result.checkpoint.as_directory() as d:
        return worker.read_checkpoint(d)


def predict_split(booster, fs: FeatureSet, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of every row of the split in the stored label's units (the
    model's space; ``mlbatch.labels.inverse_label`` maps them to the label's own), file by
    file on the driver (which already read every file for validation; memory holds one
    file plus the predictions)."""
    preds, labels = [], []
    for path in fs.files(split):
        x, y = data.read_split(fs, path)
        preds.append(booster.inplace_predict(x))
        labels.append(y)
    return np.concatenate(preds), np.concatenate(labels)


def eval_metrics(fs: FeatureSet, preds: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``task_metrics`` in the label's own units (``eval_loss`` among them) and
    ``objective_loss`` (``mlbatch.metrics.split_losses``) of stored-space predictions."""
    y, p = inverse_label(labels, fs.label_transform), inverse_label(preds, fs.label_transform)
    objective = split_losses(fs.task, labels, preds, fs.label_transform)["objective_loss"]
    return {**task_metrics(fs.task, y, p), "objective_loss": objective}


def run(config: XGBoostConfig, *, callbacks: Sequence = (), overwrite: bool = False
        ) -> dict[str, Any]:
    """The whole job; returns the metrics document it wrote to ``<output>/metrics.json``."""
    started = time.time()
    fs = data.load_and_validate(config.features, scan=config.check_data)
    scan_s = time.time() - started
    params = config.booster_params(fs.task, len(fs.classes))
    writer = ArtifactWriter(config.output, artifacts.TYPE, job="ray_jobs.xgboost",
                            config={"job": _config_dict(config), "params": params})
    writer.claim(overwrite=overwrite)
    writer.timings["validate_s"] = round(scan_s, 3)  # the driver's pass over the input
    writer.input_artifact("features", fs.root, "features")
    with writer:  # an exception marks the output failed
        return _train_and_write(config, fs, params, writer, callbacks, started)


def _config_dict(config: XGBoostConfig) -> dict[str, Any]:
    doc = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return {**doc, "params": dict(config.params)}


def _train_and_write(config: XGBoostConfig, fs: FeatureSet, params: dict,
                     writer: ArtifactWriter, callbacks: Sequence, started: float) -> dict:
    ray_cluster.connect(config.address)
    ray_cluster.check_worker_env([config.features, config.output])
    layout = resolve_layout(config)
    cluster.check_layout(layout)
    logger.info("training %s on %d train / %d eval rows, %d features, task %s", layout.describe(),
                fs.num_rows("train"), fs.num_rows("eval"), len(fs.names), fs.task)
    try:
        cluster.wait_for_resources(layout, config.placement_timeout_s)
    except TimeoutError as e:
        raise ray_cluster.PlacementError(ray_cluster.placement_timeout_message(
            layout.describe(), config.placement_timeout_s)) from e
    spec = train_spec(config, fs, params, layout, callbacks=callbacks)
    checkpoints = storage.join(writer.root, CHECKPOINT_DIR)
    t0 = time.time()
    writer.timings["ray_setup_s"] = round(t0 - started - writer.timings["validate_s"], 3)
    booster, state = fit(make_trainer(spec, layout, name="train", storage_uri=checkpoints,
                                      max_failures=config.max_actor_restarts))
    training_s = time.time() - t0
    storage.delete(checkpoints)  # only a restart needs them; a failed run keeps them
    metric, mode = early_stopping_metric(fs.task, config.early_stopping_metric)
    best = (worker.best_round(state.history, metric, mode) if config.early_stopping_rounds
            else booster.num_boosted_rounds())
    model = booster[:best]
    t1 = time.time()
    preds, labels = predict_split(model, fs, "eval")
    doc = _metrics_doc(config, fs, layout, state.history, best, booster.num_boosted_rounds(),
                       eval_metrics(fs, preds, labels), training_s, started)
    _write(writer.root, model, fs, state.history, best, doc, params, layout)
    writer.config["layout"] = dataclasses.asdict(layout)
    writer.metrics.update(doc["eval"])
    if fs.task == "multiclass_classification":  # rows true class, columns arg-max class
        writer.metrics["confusion_matrix"] = confusion_matrix(labels, preds, fs.classes)
    writer.timings.update(training_s=doc["training_time_s"], score_and_write_s=round(
        time.time() - t1, 3), total_s=doc["total_time_s"])
    writer.commit(body=artifacts.model_section(fs, best_round=best,
                                               rounds_trained=booster.num_boosted_rounds()))
    return doc


def _metrics_doc(config: XGBoostConfig, fs: FeatureSet, layout: Layout, history: list[dict],
                 best: int, rounds: int, eval_metrics: dict, training_s: float,
                 started: float) -> dict[str, Any]:
    at_best = next(r for r in history if r["round"] == best)["metrics"]
    train_at_best = {k.split("-", 1)[1]: v for k, v in at_best.items() if k.startswith("train-")}
    if "error" in train_at_best:
        train_at_best["accuracy"] = 1.0 - train_at_best.pop("error")
    metric, _ = early_stopping_metric(fs.task, config.early_stopping_metric)
    return {
        "task": fs.task, "label": fs.label,
        "eval": eval_metrics,  # exact, from model.json's predictions on every eval row,
        # in the label's own units (label_transform inverted) but objective_loss
        "loss_units": loss_units(fs.task, fs.label_transform),
        "label_transform": fs.label_transform,
        # XGBoost's (allreduced) train metrics at the best round, in the stored label's units
        "train_xgboost": train_at_best,
        "best_round": best, "rounds_trained": rounds,
        "early_stopping": {"metric": config.early_stopping_metric, "history_key": metric,
                           "rounds": config.early_stopping_rounds},
        "rows": {"train": fs.num_rows("train"), "eval": fs.num_rows("eval")},
        "num_features": len(fs.names),
        "layout": dataclasses.asdict(layout),
        "training_time_s": round(training_s, 3),
        "total_time_s": round(time.time() - started, 3),
    }


def _write(out: str, model, fs: FeatureSet, history: list[dict], best: int, doc: dict,
           params: dict, layout: Layout) -> None:
    def at(name: str) -> str:
        return storage.join(out, name)
    artifacts.save_model(model, at(artifacts.MODEL_FILE))
    write_json(at(artifacts.METRICS_FILE), doc)
    write_json(at(artifacts.IMPORTANCE_FILE), artifacts.feature_importance(model, fs))
    write_json(at(artifacts.RUN_CONFIG_FILE),
               {"params": params, "layout": dataclasses.asdict(layout),
                "features": fs.root, "feature_names": fs.names})
    write_json(at(artifacts.CURVE_DATA_FILE), history)
    artifacts.plot_learning_curve(history, best, at(artifacts.CURVE_FILE))
    logger.info("wrote %s (best round %d): %s", out, best,
                describe_losses(fs.task, doc["eval"], fs.label_transform))
