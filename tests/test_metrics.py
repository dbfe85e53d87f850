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


@pytest.mark.parametrize("task, labels, scores", [
    ("regression", np.array([1.0, 4.0, 9.0, 2.5, 0.0]), np.array([2.0, 3.0, 9.5, 2.0, -1.0])),
    ("binary_classification", np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.2, 0.4, 0.6, 0.7])),
    ("multiclass_classification", np.array([0, 2, 1, 2, 0]),
     np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4],
               [0.4, 0.4, 0.2]])),
])
def test_loss_sums_of_two_shards_give_the_whole_splits_loss(task, labels, scores):
    """What the XGBoost workers allreduce: shard sums added, not shard losses averaged."""
    a, b = metrics.loss_sums(task, labels[:2], scores[:2]), metrics.loss_sums(
        task, labels[2:], scores[2:])
    whole = metrics.loss_from_sums(task, a[0] + b[0], a[1] + b[1])
    assert whole == pytest.approx(metrics.eval_loss(task, labels, scores), rel=1e-12)
    if task == "regression":  # RMSE of (1, 1, 0.5, 0.5, 1): sqrt(3.5 / 5)
        assert whole == pytest.approx(math.sqrt(3.5 / 5), rel=1e-12)
        shard_mean = (metrics.loss_from_sums(task, *a) + metrics.loss_from_sums(task, *b)) / 2
        assert shard_mean != pytest.approx(whole, rel=1e-3)
    assert math.isnan(metrics.loss_from_sums(task, 0.0, 0))


def test_split_losses_eval_loss_in_label_units_objective_loss_in_log_units():
    stored_y, stored_p = np.log1p([99.0, 999.0]), np.log1p([199.0, 999.0])
    got = metrics.split_losses("regression", stored_y, stored_p, {"kind": "log1p"})
    assert got["eval_loss"] == pytest.approx(math.sqrt(100.0 ** 2 / 2), rel=1e-12)
    assert got["objective_loss"] == pytest.approx(math.log(2.0) / math.sqrt(2.0), rel=1e-12)
    same = metrics.split_losses("regression", stored_y, stored_p, None)
    assert same["eval_loss"] == same["objective_loss"] == pytest.approx(got["objective_loss"])
    assert metrics.loss_units("regression", {"kind": "log1p"}) == {
        "eval_loss": "rmse in label units", "objective_loss": "rmse of log1p(label)"}
    assert metrics.loss_units("binary_classification", None) == {
        "eval_loss": "logloss in label units", "objective_loss": "logloss of label"}


def test_losses_are_printed_with_units_and_thousands_separators():
    losses = {"eval_loss": 1720924.4, "objective_loss": 0.568812}
    assert metrics.describe_losses("regression", losses, {"kind": "log1p"}) == (
        "eval RMSE 1,720,924 (label units); objective RMSE of log1p(label) 0.5688")
    assert metrics.describe_losses("regression", losses, None) == (
        "eval RMSE 1,720,924 (label units)")
    assert metrics.describe_losses("binary_classification", {"eval_loss": 0.44371}, None) == (
        "eval logloss 0.4437 (label units)")
    assert [metrics.format_number(v) for v in (12160000.0, 999.5, 0.000123456, None,
                                               math.nan, 3)] == [
        "12,160,000", "999.5", "0.0001235", "n/a", "n/a", "3"]


def test_recorded_losses_read_old_metrics_as_they_were_written():
    new = {"eval_loss": 1720924.4, "objective_loss": 0.5688, "rmse": 1720924.4}
    assert metrics.recorded_losses(new, "ray_jobs.xgboost", {"kind": "log1p"}) == {
        "eval_loss": 1720924.4, "objective_loss": 0.5688, "note": None}
    old_job = metrics.recorded_losses({"eval_loss": 1720924.4, "rmse": 1720924.4},
                                      "ray_jobs.xgboost", {"kind": "log1p"})
    assert (old_job["eval_loss"], old_job["objective_loss"]) == (1720924.4, None)
    assert old_job["note"].startswith("recorded before objective_loss existed: eval_loss is in "
                                      "label units")
    old_tune = metrics.recorded_losses({"eval_loss": 0.5688}, "ray_jobs.tune[xgboost]",
                                       {"kind": "log1p"})
    assert (old_tune["eval_loss"], old_tune["objective_loss"]) == (None, 0.5688)
    # without a transform the old Tune value was already in label units
    assert metrics.recorded_losses({"eval_loss": 0.3}, "ray_jobs.tune[xgboost]",
                                   None)["eval_loss"] == 0.3
