import pytest

from ray_jobs.xgboost.config import ConfigError, Layout, XGBoostConfig, normalize_params


def cfg(**kw):
    return XGBoostConfig(features="f", output="o", **kw)


def test_booster_params_follow_the_label_task_and_device():
    c = cfg(params={"learning_rate": 0.3, "max_depth": 4})
    clf = c.booster_params("binary_classification")
    assert (clf["objective"], clf["eval_metric"], clf["eta"], clf["max_depth"]) == (
        "binary:logistic", ["auc", "error", "logloss"], 0.3, 4)
    assert clf["device"] == "cpu" and clf["tree_method"] == "hist"
    reg = cfg(gpus_per_actor=1).booster_params("regression")
    assert (reg["objective"], reg["eval_metric"], reg["device"]) == (
        "reg:squarederror", ["mae", "rmse"], "cuda")


@pytest.mark.parametrize("params, match", [
    ({"max_dpeth": 3}, r"params.max_dpeth: unknown XGBoost parameter"),
    ({"nthread": 4}, r"params.nthread is set by the job from --cpus-per-actor"),
    ({"eval_metric": "auc"}, r"params.eval_metric is set by the job"),
    ({"eta": 0.1, "learning_rate": 0.2}, r"given twice"),
    ({"subsample": 1.5}, r"params.subsample=1.5 outside"),
    ({"max_depth": "deep"}, r"params.max_depth: expected a number"),
])
def test_bad_params_are_named(params, match):
    with pytest.raises(ConfigError, match=match):
        normalize_params(params)


def test_objective_must_fit_the_task_and_exact_is_refused():
    with pytest.raises(ConfigError, match="does not fit the regression label"):
        cfg(params={"objective": "binary:logistic"}).booster_params("regression")
    with pytest.raises(ConfigError, match="tree_method 'exact'"):
        cfg(params={"tree_method": "exact"}).booster_params("binary_classification")


@pytest.mark.parametrize("field, value", [("num_actors", 0), ("cpus_per_actor", 0),
                                          ("num_boost_round", 0), ("gpus_per_actor", -1),
                                          ("early_stopping_rounds", 0)])
def test_bad_numbers_are_named(field, value):
    with pytest.raises(ConfigError, match=field):
        cfg(**{field: value})


def test_layout_totals():
    lay = Layout(num_actors=3, cpus_per_actor=2, gpus_per_actor=1)
    assert (lay.total_cpus, lay.total_gpus) == (6, 3)
    assert lay.describe() == "3 actor(s) x (2 CPU, 1 GPU)"


def test_early_stopping_metric_is_declared_and_shared_with_the_jax_job():
    from ray_jobs.jax.__main__ import build_config, parse_args
    from ray_jobs.xgboost.__main__ import parse_args as xgb_parse_args

    assert XGBoostConfig(features="f", output="o").early_stopping_metric == "eval_loss"
    with pytest.raises(ConfigError, match="^early_stopping_metric 'rmse': expected one of "
                                          r"\('eval_loss', 'objective_loss'\)"):
        XGBoostConfig(features="f", output="o", early_stopping_metric="rmse")
    argv = ["--features", "f", "--output", "o", "--early-stopping-metric", "objective_loss"]
    assert xgb_parse_args(argv)[0].early_stopping_metric == "objective_loss"
    assert build_config(parse_args(argv)).early_stopping_metric == "objective_loss"
    assert build_config(parse_args(argv[:4])).early_stopping_metric == "eval_loss"
