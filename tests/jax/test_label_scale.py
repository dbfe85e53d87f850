"""Regression targets: learned standardized, predicted back in the label's units."""
from __future__ import annotations

import numpy as np
import pytest

from mlbatch.artifacts.features import load_feature_set
from ray_jobs.common.synthetic import write_synthetic_features
from ray_jobs.jax import model, worker
from tests.jax.test_model import BATCH, LOGITS, hand_params

SCALE = model.LabelScale(mean=10.0, std=4.0, low=-100.0, high=60.0)


def test_regression_loss_is_on_the_standardized_label():
    labels = np.asarray(BATCH["label"], np.float64)
    _, aux = model.loss(hand_params(), {**BATCH, "label": labels * 4.0 + 10.0},
                        task="regression", l2_wide=0.0, l2_deep=0.0, scale=SCALE)
    assert float(aux["data_loss"]) == pytest.approx(np.mean((np.array(LOGITS) - labels) ** 2), rel=1e-6)


def test_predictions_are_unscaled_and_clipped_to_the_train_range():
    pred = np.asarray(model.predict(hand_params(), BATCH, "regression", SCALE))
    np.testing.assert_allclose(pred, np.minimum(np.array(LOGITS) * 4.0 + 10.0, 60.0), rtol=1e-6)
    probs = model.predict(hand_params(), BATCH, "binary_classification", SCALE)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-np.array(LOGITS))), rtol=1e-6)  # no scaling


def test_label_scale_is_the_train_splits_moments(tmp_path):
    fs = load_feature_set(write_synthetic_features(tmp_path / "f", n_train=300, n_eval=50,
                                                   task="regression", shards=2, seed=3))
    y = fs.read_table("train", columns=["label"]).column("label").to_numpy().astype(np.float64)
    scale = worker.label_scale(fs)
    assert scale == pytest.approx((y.mean(), y.std(), y.min(), y.max()))
    clf = load_feature_set(write_synthetic_features(tmp_path / "c", n_train=300, n_eval=50))
    assert worker.label_scale(clf) == model.IDENTITY
