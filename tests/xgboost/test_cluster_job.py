"""The job submitted unchanged through the Ray Jobs API (`ray job submit`)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from mlbatch.metrics import task_metrics
from tests.conftest import RAY_BIN, REPO_ROOT
from tests.xgboost.helpers import predict_eval

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

# --working-dir uploads the repository; Ray already skips what .gitignore lists (.venv,
# data, out ...); the explicit excludes keep the upload small even without it.
RUNTIME_ENV = {"excludes": [".venv", ".git", "data", "out", "bench_out", ".pytest_cache",
                            "**/__pycache__"]}


def submit(env, dashboard_url: str, *entrypoint: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAY_BIN, "job", "submit", "--address", dashboard_url, "--working-dir", str(REPO_ROOT),
         "--runtime-env-json", json.dumps(RUNTIME_ENV), "--", *entrypoint],
        env=env, capture_output=True, text=True, timeout=300)


def test_job_submit_trains_and_writes_artifacts(ray_cluster, regression_features, tmp_path):
    """Also the regression case (metrics follow the manifest's label task) and central
    loading (one Parquet file, two actors: the driver shards it by row)."""
    out = tmp_path / "xgb_job"
    done = submit(ray_cluster.env, ray_cluster.dashboard_url,
                  "python", "-m", "ray_jobs.xgboost", "--features", str(regression_features),
                  "--output", str(out), "--num-actors", "2", "--cpus-per-actor", "1",
                  "--num-boost-round", "40", "--early-stopping-rounds", "10")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "succeeded" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "regression" and set(metrics["eval"]) == {
        "eval_loss", "rmse", "mae", "objective_loss"}
    # no label transform: the label's units are the model's, both losses are one RMSE
    assert metrics["eval"]["eval_loss"] == metrics["eval"]["rmse"]
    assert metrics["eval"]["objective_loss"] == pytest.approx(metrics["eval"]["rmse"], rel=1e-12)
    assert metrics["early_stopping"] == {"metric": "eval_loss", "history_key": "eval-label_loss",
                                         "rounds": 10}
    assert metrics["rows"] == {"train": 2000, "eval": 500}
    _, booster, p, y = predict_eval(out / "model.json", regression_features)
    assert metrics["eval"] == pytest.approx(
        {**task_metrics("regression", y, p), "objective_loss": metrics["eval"]["rmse"]}, abs=1e-6)
    assert metrics["eval"]["rmse"] < float(np.std(y))  # better than predicting the mean
    assert booster.num_boosted_rounds() == metrics["best_round"]


def test_job_submit_without_token_is_refused(ray_cluster, tmp_path):
    env = dict(ray_cluster.env)
    env.pop("RAY_AUTH_TOKEN")
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    refused = submit(env, ray_cluster.dashboard_url, "python", "-m", "ray_jobs.xgboost",
                     "--features", "x", "--output", str(tmp_path / "never"))
    assert refused.returncode != 0
    assert "Authentication" in refused.stdout + refused.stderr
    assert not (tmp_path / "never").exists()
