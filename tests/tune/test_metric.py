"""Tune on any reported metric (#23.1): --metric/--mode checked on the driver against what
the job's trials report for these features, and a JAX search on a multiclass label that
maximizes the macro one-vs-rest AUC."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ray_jobs.common.synthetic import SYNTHETIC_CLASSES, write_synthetic_features
from ray_jobs.tune import __main__ as cli

pytestmark = pytest.mark.cluster

BASE = {"epochs": 1, "batch_size": 64, "eval_batch_size": 256, "vocab_pad_multiple": 32,
        "hidden_sizes": [8], "embedding_dim": 4, "patience": 0}


@pytest.fixture(scope="module")
def multiclass_features(tmp_path_factory):
    return write_synthetic_features(tmp_path_factory.mktemp("tune_mc"), n_train=640,
                                    n_eval=300, n_numeric=4, cardinalities=(5, 40), shards=2,
                                    seed=3, task="multiclass_classification")


def test_an_unknown_metric_is_refused_with_the_reported_names(connected, multiclass_features,
                                                              synthetic_features, tmp_path):
    jax = ["--job", "jax", "--features", str(multiclass_features), "--output",
           str(tmp_path / "jax"), "--set", "epochs=2"]
    with pytest.raises(ValueError, match=r"--metric 'eval_auc': the jax trials on these "
                       r"features report \['eval_loss', 'eval_logloss', 'eval_accuracy', "
                       r"'eval_auc_ovr_macro', 'eval_auc_ovr_weighted'\]"):
        cli.run([*jax, "--metric", "eval_auc", "--mode", "max"])
    with pytest.raises(ValueError, match="--metric 'eval_accuracy' needs --mode min or --mode"):
        cli.run([*jax, "--name", "nomode", "--metric", "eval_accuracy"])
    xgb = ["--job", "xgboost", "--features", str(synthetic_features), "--output",
           str(tmp_path / "xgb")]
    with pytest.raises(ValueError, match=r"--metric 'accuracy': the xgboost trials on these "
                       r"features report \['eval_loss', 'eval-auc', 'eval-error', "
                       r"'eval-logloss', 'train-auc', 'train-error', 'train-logloss'\]"):
        cli.run([*xgb, "--metric", "accuracy", "--mode", "max"])


def test_jax_search_maximizes_the_macro_auc_of_a_multiclass_label(connected,
                                                                   multiclass_features,
                                                                   tmp_path):
    from mlbatch.artifacts import read_manifest
    from mlbatch.artifacts.models import load_model
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {choice: [0.0001, 0.03]}\n")
    summary = cli.run(["--job", "jax", "--features", str(multiclass_features), "--output",
                       str(tmp_path / "out"), "--num-samples", "2", "--scheduler", "fifo",
                       "--search", "random", "--search-space", str(space),
                       "--base-config", _write(tmp_path / "base.json", BASE),
                       "--metric", "eval_auc_ovr_macro", "--mode", "max"])
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(table) == 2 and set(table["status"]) == {"TERMINATED"}
    best_value = table["best_eval_auc_ovr_macro"].max()
    assert summary["best"]["eval_auc_ovr_macro"] == pytest.approx(best_value)
    best_row = table.loc[table["best_eval_auc_ovr_macro"].idxmax()]
    assert summary["best"]["trial_id"] == best_row["trial_id"]
    body = read_manifest(tmp_path / "out").body
    assert (body["metric"], body["mode"]) == ("eval_auc_ovr_macro", "max")
    model = load_model(tmp_path / "out" / "best")
    assert model.classes == SYNTHETIC_CLASSES and "confusion_matrix" in model.metrics
    saved = json.loads((tmp_path / "out" / "settings.json").read_text())  # --resume's
    assert (saved["metric"], saved["mode"]) == ("eval_auc_ovr_macro", "max")


def _write(path, doc) -> str:
    path.write_text(json.dumps(doc))
    return str(path)
