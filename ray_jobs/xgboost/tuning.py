"""Ray Tune plug-in of the XGBoost job (interface: docs/DEVELOPING.md, "Tune").

Each trial is one xgboost-ray training run inside the trial's placement group; every
boosting round is one ``tune.report`` (metrics + checkpoint together), sent from training
actor rank 0 through xgboost-ray's queue (``callbacks.TuneReportCallback``), so ASHA can
stop a trial after any round and a resumed trial continues from its last round.

``base_config`` keys (all optional): num_actors, cpus_per_actor, gpus_per_actor,
num_boost_round, early_stopping_rounds, max_actor_restarts, checkpoint_every, params
(fixed booster params; the sampled ones override them).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from mlbatch import storage
from mlbatch.artifacts.features import load_feature_set
from ray_jobs.xgboost import data
from ray_jobs.xgboost.callbacks import MODEL_FILE, STATE_FILE, TuneReportCallback
from ray_jobs.xgboost.config import ConfigError, Layout, XGBoostConfig

SEARCH_SPACE_FILE = Path(__file__).with_name("search_space.yaml")
# Task-independent alias of the early-stopping eval metric: logloss for binary
# classification, RMSE for regression (both per round, lower is better).
METRIC = "eval_loss"
MODE = "min"

BASE_DEFAULTS: dict[str, Any] = {
    "num_actors": 1, "cpus_per_actor": 1, "gpus_per_actor": 0, "num_boost_round": 200,
    "early_stopping_rounds": 20, "max_actor_restarts": 0, "checkpoint_every": 1, "params": {},
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
        max_actor_restarts=base["max_actor_restarts"], params=params)
    every = base["checkpoint_every"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"base_config.checkpoint_every must be an integer >= 1, got {every!r}")
    return cfg, Layout(cfg.num_actors, cfg.cpus_per_actor, cfg.gpus_per_actor), every


def make_trainable(features_dir: str, base_config: dict) -> Callable[[dict], None]:
    """Validates the config and the feature directory here, on the Tune driver (a bad
    input fails before any trial starts), and returns the function trainable."""
    from ray_jobs.xgboost.driver import early_stopping_metric

    features_dir = storage.locate(features_dir).uri
    cfg, _, _ = job_config(features_dir, base_config)
    fs = data.load_and_validate(features_dir)
    cfg.booster_params(fs.task)
    metric, mode = early_stopping_metric(fs.task)
    base_config = dict(base_config)

    def xgboost_trial(config: dict) -> None:
        _run_trial(features_dir, base_config, config, metric, mode)

    return xgboost_trial


def _run_trial(features_dir: str, base_config: dict, sampled: dict, metric: str,
               mode: str) -> None:
    import xgboost as xgb

    from ray_jobs.xgboost.driver import train_booster

    cfg, layout, every = job_config(features_dir, base_config, sampled)
    fs = load_feature_set(features_dir, check_columns=False)
    booster, best, done = None, None, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # resumed (driver restart or trial retry): continue
        with checkpoint.as_directory() as d:
            booster = xgb.Booster(model_file=str(Path(d, MODEL_FILE)))
            state = json.loads(Path(d, STATE_FILE).read_text())
        done, best = state["round"], (state["best_round"], state["best_value"])
    if done >= cfg.num_boost_round:
        return
    report = TuneReportCallback(metric, mode, METRIC, cfg.num_boost_round, every, best)
    train_booster(fs, cfg.booster_params(fs.task), layout, cfg, callbacks=[report],
                  num_boost_round=cfg.num_boost_round - done, xgb_model=booster)


def trial_resources(base_config: dict) -> tune.PlacementGroupFactory:
    """An empty head bundle for the trial function (it only relays reports) plus one
    bundle per training actor; PACK keeps a trial's actors together when possible."""
    base = {**BASE_DEFAULTS, **base_config}
    actor = {"CPU": base["cpus_per_actor"]}
    if base["gpus_per_actor"]:
        actor["GPU"] = base["gpus_per_actor"]
    return tune.PlacementGroupFactory([{}] + [dict(actor)] * base["num_actors"],
                                      strategy="PACK")


def max_iterations(base_config: dict) -> int:
    """Optional plug-in hook: the most reports a trial makes (ASHA's max_t)."""
    return int({**BASE_DEFAULTS, **base_config}["num_boost_round"])


def export_best(checkpoint: tune.Checkpoint, output_dir: str, *, features: str) -> str:
    """Commits the trial's model (trees up to its best round) as an ``xgboost_model``
    artifact in ``output_dir`` (any URI) with lineage to ``features``; returns its digest.
    ``model_info.json``: best round, its eval_loss, rounds trained."""
    import xgboost as xgb

    from mlbatch.artifacts import ArtifactWriter, write_json
    from ray_jobs.xgboost import artifacts

    writer = ArtifactWriter(output_dir, artifacts.TYPE, job="ray_jobs.tune[xgboost]")
    writer.claim(overwrite=True)
    fs = load_feature_set(writer.input_artifact("features", features, "features").root,
                          check_columns=False)
    with checkpoint.as_directory() as d:
        booster = xgb.Booster(model_file=str(Path(d, MODEL_FILE)))
        state = json.loads(Path(d, STATE_FILE).read_text())
    artifacts.save_model(booster[: state["best_round"]],
                         storage.join(writer.root, artifacts.MODEL_FILE))
    info = {"best_round": state["best_round"], f"best_{METRIC}": state["best_value"],
            "rounds_trained": state["round"]}
    write_json(storage.join(writer.root, "model_info.json"), info)
    writer.metrics[METRIC] = state["best_value"]
    return writer.commit(body=artifacts.model_section(
        fs, best_round=state["best_round"], rounds_trained=state["round"])).digest
