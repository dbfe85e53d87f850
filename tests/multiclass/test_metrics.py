"""Multiclass metrics against values computed by hand (5 rows, 3 classes)."""
import math

import numpy as np
import pytest

from mlbatch import metrics

Y = np.array([0, 1, 2, 2, 1])
P = np.array([[0.7, 0.2, 0.1],     # arg-max 0: right
              [0.3, 0.4, 0.3],     # 1: right
              [0.2, 0.5, 0.3],     # 1: wrong (2)
              [0.1, 0.1, 0.8],     # 2: right
              [0.5, 0.25, 0.25]])  # 0: wrong (1)


def test_multiclass_metrics_exact():
    out = metrics.task_metrics("multiclass_classification", Y, P)
    logloss = -(math.log(0.7) + math.log(0.4) + math.log(0.3) + math.log(0.8)
                + math.log(0.25)) / 5
    # one-vs-rest AUC per class: class 0 ranks its one row above all 4 others (1);
    # class 1: 0.4 and 0.25 each beat 0.2 and 0.1, lose to 0.5 (4/6); class 2: 0.3 beats
    # 0.1 and 0.25, ties 0.3 (half), 0.8 beats all three (5.5/6)
    assert out == {"eval_loss": pytest.approx(logloss), "logloss": pytest.approx(logloss),
                   "accuracy": 0.6,
                   "auc_ovr_macro": pytest.approx((1 + 4 / 6 + 5.5 / 6) / 3),
                   "auc_ovr_weighted": pytest.approx((1 * 1 + 2 * 4 / 6 + 2 * 5.5 / 6) / 5)}
    assert out["auc_ovr_macro"] == pytest.approx(31 / 36)
    assert out["auc_ovr_weighted"] == pytest.approx(5 / 6)


def test_a_class_without_rows_is_left_out_of_the_auc_average():
    y = np.array([0, 0, 1])
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.5, 0.2]])
    # class 0: 0.6 and 0.2 vs 0.3 -> 1 of 2; class 1: 0.5 vs 0.3, 0.7 -> 1 of 2; class 2: no rows
    assert metrics.auc_ovr(y, p, "macro") == pytest.approx(0.5)
    assert metrics.auc_ovr(y, p, "weighted") == pytest.approx(0.5)
    assert metrics.multi_accuracy(y, p) == pytest.approx(2 / 3)  # rows 0 and 2


def test_arg_max_ties_go_to_the_first_class_and_logloss_is_clipped():
    y = np.array([0, 1])
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert metrics.multi_accuracy(y, p) == 0.5
    assert metrics.multi_logloss(y, p) == pytest.approx(
        -(math.log(0.5) + math.log(metrics.LOGLOSS_EPS)) / 2)


@pytest.mark.parametrize("labels, scores, message", [
    (np.array([0, 3]), np.full((2, 3), 1 / 3), r"class indices in \[0, 3\)"),
    (np.array([0, 1.5]), np.full((2, 3), 1 / 3), r"class indices in \[0, 3\)"),
    (np.array([0, 1]), np.array([0.2, 0.8]), r"must be \[n, K\] for 2 labels"),
])
def test_bad_multiclass_inputs_are_refused(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        metrics.eval_loss("multiclass_classification", labels, scores)


def test_confusion_matrix_rows_true_columns_predicted():
    out = metrics.confusion_matrix(Y, P, ("a", "b", "c"))
    # true 0 -> 0; true 1 -> 1 and 0; true 2 -> 1 and 2
    assert out == {"classes": ["a", "b", "c"], "counts": [[1, 0, 0], [1, 1, 0], [0, 1, 1]]}
    assert all(type(v) is int for row in out["counts"] for v in row)  # JSON ints
    tie = metrics.confusion_matrix(np.array([1, 3]), np.array([[0.5, 0.5, 0, 0],
                                                               [0, 0, 0, 1.0]]), "wxyz")
    assert tie["counts"] == [[0] * 4, [1, 0, 0, 0], [0] * 4, [0, 0, 0, 1]]  # a tie -> first
    with pytest.raises(ValueError, match=r"3 probability columns for 2 classes \['a', 'b'\]"):
        metrics.confusion_matrix(Y, P, ("a", "b"))
