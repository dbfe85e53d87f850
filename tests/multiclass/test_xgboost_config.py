"""The XGBoost job's booster params for a multiclass label (no cluster needed)."""
import pytest

from ray_jobs.xgboost.config import ConfigError, XGBoostConfig
from ray_jobs.xgboost.driver import early_stopping_metric


def cfg(**kw):
    return XGBoostConfig(features="f", output="o", **kw)


def test_multiclass_trains_softprob_with_the_artifacts_class_count():
    p = cfg().booster_params("multiclass_classification", 4)
    assert (p["objective"], p["num_class"], p["eval_metric"]) == (
        "multi:softprob", 4, ["merror", "mlogloss"])
    assert early_stopping_metric("multiclass_classification", "objective_loss") == (
        "eval-mlogloss", "min")
    assert "num_class" not in cfg().booster_params("binary_classification")


@pytest.mark.parametrize("kw, call, message", [
    ({}, ("multiclass_classification", 0), "num_class 0: a multiclass_classification label"),
    ({}, ("regression", 3), "num_class 3: a multiclass_classification label"),
    ({"params": {"objective": "multi:softmax"}}, ("multiclass_classification", 3),
     "params.objective 'multi:softmax' does not fit the multiclass_classification label"),
])
def test_wrong_class_counts_and_objectives_are_refused(kw, call, message):
    with pytest.raises(ConfigError, match=message):
        cfg(**kw).booster_params(*call)


def test_num_class_is_set_by_the_job():
    with pytest.raises(ConfigError, match="params.num_class is set by the job from the label"):
        cfg(params={"num_class": 3})
