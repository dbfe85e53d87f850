"""Ray Tune plug-in of the XGBoost job (interface: docs/DEVELOPING.md, "Tune").

Each trial runs the job's own Ray Train V2 ``XGBoostTrainer`` (``driver.make_trainer``)
with its checkpoints in the trial's directory; the workers report every
``checkpoint_every`` rounds (metrics and a checkpoint together) and Ray's
``ray.tune.integration.ray_train.TuneReportCallback`` hands each report to the trial, with
the checkpoint's path as ``checkpoint_path``. ASHA counts boosting rounds (``TIME_ATTR``),
so its rungs fall on reports when ``checkpoint_every`` divides them. A trial that is
restarted (driver killed and ``--resume``, or a retried failure) finds its Train run by
name and continues from the run's latest checkpoint.

The training workers are placed by Ray Train in their own placement group, not in the
trial's: a trial itself reserves nothing (its function only waits on the trainer), the
driver checks once that one trial's workers fit the cluster, and
:func:`max_concurrent_trials` keeps Tune from starting more trials than their workers
fit (Tune would otherwise start them all and their worker groups would wait).

``base_config`` keys (all optional): num_actors, cpus_per_actor, gpus_per_actor,
num_boost_round, early_stopping_rounds, early_stopping_metric, max_actor_restarts,
checkpoint_every, params (fixed booster params; the sampled ones override them).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from mlbatch import storage
from mlbatch.artifacts.features import load_feature_set
from mlbatch.metrics import loss_units
from ray_jobs.common import cluster as ray_cluster
from ray_jobs.xgboost import data
from ray_jobs.xgboost.cluster import LAYOUT_HINT, bundles
from ray_jobs.xgboost.config import ConfigError, Layout, XGBoostConfig
from ray_jobs.xgboost.worker import LABEL_LOSS, MODEL_FILE, STATE_FILE

SEARCH_SPACE_FILE = Path(__file__).with_name("search_space.yaml")
# The task's loss in label units (``mlbatch.metrics``: logloss, multi-class logloss, RMSE
# of the label's own units -- dollars, not log dollars), every report; lower is better.
METRIC = "eval_loss"
MODE = "min"
TIME_ATTR = "round"  # ASHA's clock: boosting rounds, whatever the report interval
# A stopped trial's process must end (it owns the Train controller and its workers).
REUSE_ACTORS = False
TRAIN_RUN = "train"  # the trial's Ray Train run, under the trial's directory

BASE_DEFAULTS: dict[str, Any] = {
    "num_actors": 1, "cpus_per_actor": 1, "gpus_per_actor": 0, "num_boost_round": 200,
    "early_stopping_rounds": 20, "early_stopping_metric": "eval_loss", "max_actor_restarts": 0,
    "checkpoint_every": 5, "params": {},
}


def job_config(features_dir: str, base_config: dict, sampled: dict | None = None
               ) -> tuple[XGBoostConfig, Layout, int]:
    """(job config, layout, checkpoint_every) of one trial; raises ConfigError naming a key."""
    unknown = set(base_config) - set(BASE_DEFAULTS)
    if unknown:
        raise ConfigError(f"base_config: unknown key(s) {sorted(unknown)}; "
                          f"known: {sorted(BASE_DEFAULTS)}")
    base = {**BASE_DEFAULTS, **base_config}
    params = {**dict(base["params"]), **(sampled or {})}
    cfg = XGBoostConfig(
        features=features_dir, output="-", num_actors=base["num_actors"],
        cpus_per_actor=base["cpus_per_actor"], gpus_per_actor=base["gpus_per_actor"],
        num_boost_round=base["num_boost_round"],
        early_stopping_rounds=base["early_stopping_rounds"] or None,
        early_stopping_metric=base["early_stopping_metric"],
        max_actor_restarts=base["max_actor_restarts"], params=params)
    every = base["checkpoint_every"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"base_config.checkpoint_every must be an integer >= 1, got {every!r}")
    return cfg, Layout(cfg.num_actors, cfg.cpus_per_actor, cfg.gpus_per_actor), every


def make_trainable(features_dir: str, base_config: dict) -> Callable[[dict], None]:
    """Validates the config and the feature directory here, on the Tune driver (a bad
    input fails before any trial starts), and returns the function trainable."""
    features_dir = storage.locate(features_dir).uri
    cfg, _, _ = job_config(features_dir, base_config)
    fs = data.load_and_validate(features_dir)
    cfg.booster_params(fs.task, len(fs.classes))
    base_config = dict(base_config)

    def xgboost_trial(config: dict) -> None:
        _run_trial(features_dir, base_config, config)

    return xgboost_trial


def _run_trial(features_dir: str, base_config: dict, sampled: dict) -> None:
    from ray.tune.integration.ray_train import TuneReportCallback

    from ray_jobs.xgboost import driver

    cfg, layout, every = job_config(features_dir, base_config, sampled)
    fs = load_feature_set(features_dir, check_columns=False)
    params = cfg.booster_params(fs.task, len(fs.classes))
    spec = driver.train_spec(cfg, fs, params, layout, alias=METRIC, report_every=every)
    trial_storage = tune.get_context().get_storage()
    trainer = driver.make_trainer(
        spec, layout, name=TRAIN_RUN, storage_uri=trial_storage.trial_fs_path,
        storage_filesystem=trial_storage.storage_filesystem,
        max_failures=cfg.max_actor_restarts, callbacks=[TuneReportCallback()])
    trainer.fit()


def trial_resources(base_config: dict) -> dict:
    """What a trial itself reserves: next to nothing (module docstring; Tune refuses an
    empty request, so one byte of memory, which holds no CPU back from the workers).
    Checks first that one trial's training workers fit the cluster (PlacementError:
    asked vs. have)."""
    _, layout, _ = job_config("-", base_config)
    ray_cluster.check_placement(bundles(layout), what=f"one trial ({layout.describe()})",
                                hint=LAYOUT_HINT)
    return {"CPU": 0, "memory": 1}


def max_concurrent_trials(base_config: dict) -> int:
    """Trials whose training workers fit the cluster's CPUs (and GPUs) at once."""
    import ray

    _, layout, _ = job_config("-", base_config)
    total = ray.cluster_resources()
    fits = int(total.get("CPU", 0)) // layout.total_cpus
    if layout.total_gpus:
        fits = min(fits, int(total.get("GPU", 0)) // layout.total_gpus)
    return max(1, fits)


def reported_metrics(features: str, base: dict[str, Any]) -> tuple[str, ...]:
    """The metrics every report carries (what ``--metric`` may name): eval_loss (label
    units), objective_loss (the model's space) and the per-round ``eval-``/``train-``
    metrics (XGBoost's own and ``label_loss``, eval_loss's per-round name)."""
    cfg, _, _ = job_config(storage.locate(features).uri, base)
    fs = load_feature_set(features, check_columns=False)
    names = cfg.booster_params(fs.task, len(fs.classes))["eval_metric"]
    names = ([names] if isinstance(names, str) else list(names)) + [LABEL_LOSS]
    return (METRIC, "objective_loss",
            *(f"{side}-{n}" for side in ("eval", "train") for n in names))


def max_iterations(base_config: dict) -> int:
    """Optional plug-in hook: ASHA's max_t, in ``TIME_ATTR`` units (boosting rounds)."""
    return int({**BASE_DEFAULTS, **base_config}["num_boost_round"])


def export_best(checkpoint: tune.Checkpoint, output_dir: str, *, features: str) -> str:
    """Commits the trial's model (trees up to its best round) as an ``xgboost_model``
    artifact in ``output_dir`` (any URI) with lineage to ``features``; returns its digest.
    ``model_info.json``: best round, its eval_loss (label units) and objective_loss,
    rounds trained. Its metrics: the eval split's (``best_eval_metrics``), with eval_loss and
    objective_loss as the trial reported them at its best round."""
    import xgboost as xgb

    from mlbatch.artifacts import ArtifactWriter, write_json
    from ray_jobs.xgboost import artifacts

    writer = ArtifactWriter(output_dir, artifacts.TYPE, job="ray_jobs.tune[xgboost]")
    writer.claim(overwrite=True)
    fs = load_feature_set(writer.input_artifact("features", features, "features").root,
                          check_columns=False)
    with checkpoint.as_directory() as d:
        booster = xgb.Booster(model_file=str(Path(d, MODEL_FILE)))
        state = json.loads(Path(d, STATE_FILE).read_text())  # worker.RunState
    model = booster[: state["best_round"]]
    artifacts.save_model(model, storage.join(writer.root, artifacts.MODEL_FILE))
    losses = best_losses(state, fs.task)
    info = {"best_round": state["best_round"], f"best_{METRIC}": losses[METRIC],
            "best_objective_loss": losses["objective_loss"], "rounds_trained": state["round"],
            "loss_units": loss_units(fs.task, fs.label_transform)}
    write_json(storage.join(writer.root, "model_info.json"), info)
    writer.metrics.update(best_eval_metrics(model, fs))
    writer.metrics.update({k: v for k, v in losses.items() if v is not None})
    return writer.commit(body=artifacts.model_section(
        fs, best_round=state["best_round"], rounds_trained=state["round"])).digest


def best_losses(state: dict, task: str) -> dict[str, float | None]:
    """eval_loss (label units) and objective_loss at the best round of a checkpoint's
    ``worker.RunState`` (whatever metric early stopping watched); None where the state's
    history does not hold them."""
    from ray_jobs.xgboost.driver import early_stopping_metric

    # a checkpoint written before label_loss existed has no eval_loss in label units
    at = next((r["metrics"] for r in state.get("history", [])
               if r["round"] == state["best_round"]), {})
    return {METRIC: at.get(early_stopping_metric(task, "eval_loss")[0]),
            "objective_loss": at.get(early_stopping_metric(task, "objective_loss")[0])}


def best_eval_metrics(model, fs) -> dict:
    """The exported model's metrics on the eval split, as the job's own run records them
    (``driver.eval_metrics``: AUC, logloss, accuracy or RMSE, MAE in label units; a
    multiclass model's ``confusion_matrix``), so the registry and the blessing read the
    same figures for a Tune best as for a job's model: one pass on the driver."""
    from mlbatch.metrics import confusion_matrix
    from ray_jobs.xgboost.driver import eval_metrics, predict_split

    preds, labels = predict_split(model, fs, "eval")
    out = eval_metrics(fs, preds, labels)
    if fs.task == "multiclass_classification":
        out["confusion_matrix"] = confusion_matrix(labels, preds, fs.classes)
    return out
