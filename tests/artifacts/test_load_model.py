"""``mlbatch.artifacts.models.load_model``: the one model contract. Its predictions equal
the type readers' own on the session's trained models (XGBoost, JAX), a regression model
predicts in the label's units, and what the contract cannot trust is refused, named."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from mlbatch import metrics
from mlbatch.artifacts import ArtifactError, ArtifactWriter, read_manifest
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.jax_model import load_jax_model
from mlbatch.artifacts.models import MODEL_TYPES, load_model
from mlbatch.artifacts.xgboost_model import MODEL_FILE, load_xgboost_model, model_section
from pipelines.figures import key_figures, summary
from ray_jobs.common.synthetic import write_synthetic_features

LOG1P = {"kind": "log1p"}


def _columns(t, names, dtype) -> np.ndarray:
    return np.stack([t.column(n).to_numpy() for n in names], axis=1).astype(dtype)


def test_xgboost_predictions_equal_the_type_readers(flights_xgboost, flights_features):
    fs = load_feature_set(flights_features)
    evl = fs.read_table("eval")
    model = load_model(flights_xgboost)
    old = load_xgboost_model(flights_xgboost)
    assert (model.type, model.task, model.label, model.label_transform) == (
        "xgboost_model", "binary_classification", "delayed", None)
    assert model.feature_names == tuple(fs.names) == old.feature_names
    assert model.digest == read_manifest(flights_xgboost).digest
    assert model.features["digest"] == fs.digest
    got = model.predict(evl)
    np.testing.assert_array_equal(got, old.predict(_columns(evl, old.feature_names, np.float32)))
    assert got.dtype == np.float64 and got.shape == (evl.num_rows,)
    np.testing.assert_array_equal(model.predict_stored(evl), got)  # probabilities either way
    assert metrics.auc(evl.column("delayed").to_numpy(), got) == pytest.approx(
        model.metrics["auc"], abs=1e-12)


def test_jax_predictions_equal_the_type_readers(flights_jax, flights_features):
    evl = load_feature_set(flights_features).read_table("eval")
    model = load_model(flights_jax)
    old = load_jax_model(flights_jax)
    assert (model.type, model.task, model.label_transform) == (
        "jax_model", "binary_classification", None)
    assert model.feature_names == (*old.numeric, *old.categorical)
    got = model.predict(evl)
    want = old.predict(_columns(evl, old.numeric, np.float32),
                       _columns(evl, old.categorical, np.int32))
    np.testing.assert_array_equal(got, np.asarray(want, np.float64))
    assert metrics.auc(evl.column("delayed").to_numpy(), got) == pytest.approx(
        model.metrics["eval_auc"], abs=1e-12)


def _commit_model(root: Path, features: Path, booster, **section_changes) -> Path:
    fs = load_feature_set(features)
    w = ArtifactWriter(root, "xgboost_model", job="tests.artifacts")
    w.claim()
    w.input_artifact("features", str(features), "features")
    (root / MODEL_FILE).write_bytes(bytes(booster.save_raw(raw_format="json")))
    w.metrics.update(rmse=0.5, mae=0.25)
    body = {**model_section(fs, best_round=5, rounds_trained=5), **section_changes}
    w.commit(body={k: v for k, v in body.items() if v is not None})
    return root


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """A regression booster on synthetic features, committed with a log1p label transform
    by the type's own section writer; (features dir, booster, tmp dir)."""
    tmp = tmp_path_factory.mktemp("load_model")
    features = write_synthetic_features(tmp / "features", n_train=300, n_eval=100,
                                        task="regression", seed=3)
    fs = load_feature_set(features)
    t = fs.read_table("train")
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(_columns(t, fs.names, np.float32), label=t["label"],
                                    feature_names=list(fs.names)), num_boost_round=5)
    return features, booster, tmp


def test_regression_predicts_in_the_labels_units(regression):
    features, booster, tmp = regression
    root = _commit_model(tmp / "log1p", features, booster, label_transform=LOG1P)
    evl = load_feature_set(features).read_table("eval")
    model = load_model(root)
    assert (model.task, model.label_transform) == ("regression", LOG1P)
    stored = booster.inplace_predict(_columns(evl, model.feature_names, np.float32))
    np.testing.assert_array_equal(model.predict_stored(evl), np.asarray(stored, np.float64))
    np.testing.assert_allclose(model.predict(evl), np.expm1(np.asarray(stored, np.float64)),
                               rtol=1e-15)
    # a Model pickles without its weights (a Beam pipeline carries it) and reads them again
    model2 = pickle.loads(pickle.dumps(model))
    assert model2._trained is None
    np.testing.assert_array_equal(model2.predict(evl), model.predict(evl))
    assert key_figures(str(root))["rmse"] == 0.5 and key_figures(str(root))["mae"] == 0.25


@pytest.mark.parametrize("changes, message", [
    ({"feature_names": None}, "the xgboost_model section lacks 'feature_names'"),
    ({"task": "ranking"}, "task 'ranking' is not one of ('binary_classification', "
                          "'regression', 'multiclass_classification')"),
    ({"classes": [], "task": "multiclass_classification"},
     "a multiclass model (only) names >= 2 classes; this multiclass_classification model "
     "names 0"),
    ({"label_transform": {"kind": "log"}}, "label transform {'kind': 'log'}: kind must be "
                                           "one of ('log1p',)"),
])
def test_a_section_the_contract_cannot_read_is_refused(regression, changes, message):
    features, booster, tmp = regression
    root = _commit_model(tmp / f"bad-{next(iter(changes))}", features, booster, **changes)
    with pytest.raises(ArtifactError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(root)
    # the pipeline's final table says so instead of showing the model's metrics
    figures = key_figures(str(root))
    assert "rmse" not in figures and message in figures["unreadable"]
    assert summary(figures).startswith("unreadable model: ")


def test_what_is_not_a_model_is_refused(regression):
    features, booster, tmp = regression
    with pytest.raises(ArtifactError, match=r"is a 'features' artifact; a model is one of "
                                            r"\('xgboost_model', 'jax_model'\)"):
        load_model(features)
    assert MODEL_TYPES == ("xgboost_model", "jax_model")
    model = load_model(_commit_model(tmp / "ok", features, booster))
    evl = load_feature_set(features).read_table("eval")
    with pytest.raises(ArtifactError, match=r"the table lacks the model's input columns "
                                            r"\['num_1', 'cat_0'\]"):
        model.predict(evl.drop_columns(["num_1", "cat_0"]))
