import math

import numpy as np
import pytest

from ray_jobs.xgboost import metrics


def test_auc_counts_ties_half_and_is_undefined_for_one_class():
    y = np.array([0, 0, 1, 1])
    assert metrics.auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert metrics.auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(metrics.auc(np.array([1, 1]), np.array([0.2, 0.9])))


def test_classification_metrics_exact():
    y, p = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6])
    out = metrics.task_metrics("binary_classification", y, p)
    assert out["accuracy"] == 0.5
    assert out["logloss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.4])))
    assert out["auc"] == pytest.approx(0.75)


def test_regression_metrics_exact_and_undefined_auc_is_null():
    out = metrics.task_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 1.0]))
    assert out == {"rmse": pytest.approx(math.sqrt(5 / 3)), "mae": pytest.approx(1.0)}
    assert metrics.task_metrics("binary_classification", np.array([1, 1]),
                                np.array([0.6, 0.7]))["auc"] is None
