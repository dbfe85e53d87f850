import math

import numpy as np
import pytest

from mlbatch import metrics


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
    assert out == {"eval_loss": pytest.approx(math.sqrt(5 / 3)), "rmse": pytest.approx(math.sqrt(5 / 3)),
                   "mae": pytest.approx(1.0)}
    assert metrics.task_metrics("binary_classification", np.array([1, 1]),
                                np.array([0.6, 0.7]))["auc"] is None


def test_eval_loss_is_logloss_or_rmse_in_every_trainer():
    y, p = np.array([1, 0]), np.array([0.8, 0.4])
    assert metrics.eval_loss("binary_classification", y, p) == pytest.approx(
        -np.mean(np.log([0.8, 0.6])))
    assert metrics.eval_loss("regression", np.array([0.0, 0.0]), np.array([3.0, 4.0])) == \
        pytest.approx(math.sqrt(12.5))
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        metrics.eval_loss("ranking", y, p)
