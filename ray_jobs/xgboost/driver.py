"""Builds and runs the distributed XGBoost job (the driver layer).

Order matters: validate the config and the feature directory, connect to Ray, resolve
and check the actor layout -- all before the first actor starts -- then train with
xgboost-ray, pick the best round, score the saved model on the whole eval split and
write the files (see ``artifacts.py``); ``artifact.json`` comes last, as the commit.
The output is claimed (``ArtifactWriter.claim``, the one output guard) once the input
is known to be good, before Ray is contacted; a failed run leaves its reason in the
uncommitted directory.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlbatch import storage
from mlbatch.artifacts import ArtifactWriter, write_json
from mlbatch.artifacts.features import FeatureSet
from mlbatch.labels import inverse_label
from mlbatch.metrics import task_metrics
from ray_jobs.common import cluster as ray_cluster
from ray_jobs.xgboost import artifacts, cluster, data
from ray_jobs.xgboost.callbacks import HistoryCallback, best_round, collect_history
from ray_jobs.xgboost.config import TASK_PARAMS, Layout, XGBoostConfig

logger = logging.getLogger(__name__)


def early_stopping_metric(task: str) -> tuple[str, str]:
    """(``eval-<metric>``, mode): the metric XGBoost early-stops on and Tune schedules on."""
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


def train_booster(fs: FeatureSet, params: dict, layout: Layout, config: XGBoostConfig, *,
                  callbacks: Sequence = (), num_boost_round: int | None = None,
                  xgb_model=None) -> tuple[Any, dict]:
    """xgboost-ray training over the feature Parquet; returns (booster, additional results).

    Must run where Ray is initialised. Inside a Tune trial the actors go into the trial's
    placement group; outside, xgboost-ray creates one (bounded by the placement timeout).
    """
    import xgboost_ray

    dtrain = data.ray_dmatrix(fs, "train", layout.num_actors)
    deval = data.ray_dmatrix(fs, "eval", layout.num_actors)
    ray_params = xgboost_ray.RayParams(
        num_actors=layout.num_actors, cpus_per_actor=layout.cpus_per_actor,
        gpus_per_actor=layout.gpus_per_actor, max_actor_restarts=config.max_actor_restarts,
        checkpoint_frequency=config.checkpoint_frequency)
    kwargs: dict[str, Any] = {}
    if config.early_stopping_rounds:
        kwargs["early_stopping_rounds"] = config.early_stopping_rounds
    if xgb_model is not None:
        kwargs["xgb_model"] = xgb_model
    additional: dict = {}
    with warnings.catch_warnings():
        # device="cuda" with tree_method="hist" is XGBoost 2's GPU method; xgboost-ray
        # 0.1.19 only knows the deprecated "gpu_hist" spelling and warns otherwise.
        warnings.filterwarnings("ignore", message="GPUs have been assigned")
        # One actor with several threads is a deliberate layout (docs/xgboost.md).
        warnings.filterwarnings("ignore", message=".*XGBoost will NOT be distributed")
        booster = xgboost_ray.train(
            params, dtrain, num_boost_round or config.num_boost_round,
            evals=[(dtrain, "train"), (deval, "eval")], ray_params=ray_params,
            additional_results=additional, callbacks=list(callbacks), verbose_eval=False,
            **kwargs)
    return booster, additional


def predict_split(booster, fs: FeatureSet, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of every row of the split in the label's own units (the
    inverse of the feature job's label transform, if any), file by file on the driver
    (which already read every file for validation; memory holds one file plus the
    predictions)."""
    preds, labels = [], []
    for path in fs.files(split):
        x, y = data.read_split(fs, path)
        preds.append(inverse_label(booster.inplace_predict(x), fs.label_transform))
        labels.append(inverse_label(y, fs.label_transform))
    return np.concatenate(preds), np.concatenate(labels)


def run(config: XGBoostConfig, *, callbacks: Sequence = (), overwrite: bool = False
        ) -> dict[str, Any]:
    """The whole job; returns the metrics document it wrote to ``<output>/metrics.json``."""
    started = time.time()
    fs = data.load_and_validate(config.features, scan=config.check_data)
    params = config.booster_params(fs.task)
    writer = ArtifactWriter(config.output, artifacts.TYPE, job="ray_jobs.xgboost",
                            config={"job": _config_dict(config), "params": params})
    writer.claim(overwrite=overwrite)
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
    logger.info("training %s on %d train / %d eval rows, %d features, task %s; collective "
                "tracker on %s", layout.describe(), fs.num_rows("train"), fs.num_rows("eval"),
                len(fs.names), fs.task, ray_cluster.driver_host())
    try:
        with cluster.placement_timeout(config.placement_timeout_s):
            booster, additional = train_booster(
                fs, params, layout, config, callbacks=[HistoryCallback(), *callbacks])
    except TimeoutError as e:
        raise ray_cluster.PlacementError(ray_cluster.placement_timeout_message(
            layout.describe(), config.placement_timeout_s)) from e
    history = collect_history(additional)
    metric, mode = early_stopping_metric(fs.task)
    best = (best_round(history, metric, mode) if config.early_stopping_rounds
            else booster.num_boosted_rounds())
    model = booster[:best]
    preds, labels = predict_split(model, fs, "eval")
    doc = _metrics_doc(config, fs, layout, history, best, booster.num_boosted_rounds(),
                       task_metrics(fs.task, labels, preds), additional, started)
    _write(writer.root, model, fs, history, best, doc, params, layout)
    writer.config["layout"] = dataclasses.asdict(layout)
    writer.metrics.update(doc["eval"])
    writer.timings.update(training_s=doc["training_time_s"], total_s=doc["total_time_s"])
    writer.commit(body=artifacts.model_section(fs, best_round=best,
                                               rounds_trained=booster.num_boosted_rounds()))
    return doc


def _metrics_doc(config: XGBoostConfig, fs: FeatureSet, layout: Layout, history: list[dict],
                 best: int, rounds: int, eval_metrics: dict, additional: dict,
                 started: float) -> dict[str, Any]:
    at_best = next(r for r in history if r["round"] == best)["metrics"]
    train_at_best = {k.split("-", 1)[1]: v for k, v in at_best.items() if k.startswith("train-")}
    if "error" in train_at_best:
        train_at_best["accuracy"] = 1.0 - train_at_best.pop("error")
    metric, _ = early_stopping_metric(fs.task)
    return {
        "task": fs.task, "label": fs.label,
        "eval": eval_metrics,  # exact, from model.json's predictions on every eval row,
        # in the label's own units (label_transform inverted)
        "label_transform": fs.label_transform,
        # XGBoost's (allreduced) train metrics at the best round, in the stored label's units
        "train_xgboost": train_at_best,
        "best_round": best, "rounds_trained": rounds,
        "early_stopping": {"metric": metric, "rounds": config.early_stopping_rounds},
        "rows": {"train": fs.num_rows("train"), "eval": fs.num_rows("eval")},
        "num_features": len(fs.names),
        "layout": dataclasses.asdict(layout),
        "training_time_s": round(float(additional.get("training_time_s", 0.0)), 3),
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
    artifacts.plot_learning_curve(history, best, at(artifacts.CURVE_FILE))
    logger.info("wrote %s (best round %d, eval %s)", out, best, doc["eval"])
