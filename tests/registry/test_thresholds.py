"""Blessing thresholds: parsing, checking, and the line a refused run prints."""
from __future__ import annotations

import pytest

from pipelines.model_registry.evaluate import run_checks
from pipelines.model_registry.thresholds import (Threshold, ThresholdError, check, describe,
                                                 parse_threshold)


@pytest.mark.parametrize("text, kind, expected", [
    ("auc>=0.62", "value", Threshold("auc", "value", ">=", 0.62)),
    (" rmse <= 12.5 ", "value", Threshold("rmse", "value", "<=", 12.5)),
    ("auc>=-0.01", "change", Threshold("auc", "change", ">=", -0.01)),
    ("logloss<=+2%", "change", Threshold("logloss", "change", "<=", 0.02, relative=True)),
    ("rmse<=5e-1%", "change", Threshold("rmse", "change", "<=", 0.005, relative=True)),
])
def test_parse(text, kind, expected):
    assert parse_threshold(text, kind) == expected


@pytest.mark.parametrize("text, kind, message", [
    ("auc>0.6", "value", "write METRIC>=NUMBER or METRIC<=NUMBER"),
    ("auc>=high", "value", "write METRIC>=NUMBER"),
    ("auc>=nan", "value", "write METRIC>=NUMBER"),
    ("auc>=5%", "value", "only a change threshold can be relative"),
    ("auc>=1..2%", "change", "(or NUMBER% for a relative change)"),
])
def test_parse_refuses(text, kind, message):
    with pytest.raises(ThresholdError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_threshold(text, kind)


def test_a_metric_the_task_has_not_is_refused():
    parse_threshold("rmse<=3", "value").check_task("regression")
    with pytest.raises(ThresholdError, match="--value rmse<=3: a binary_classification model "
                       "has no metric 'rmse' \\(one of auc, logloss, accuracy, eval_loss\\)"):
        parse_threshold("rmse<=3", "value").check_task("binary_classification")


def test_value_and_change_checks_with_both_numbers():
    auc_floor = parse_threshold("auc>=0.7", "value")
    assert check(auc_floor, 0.7, None)["passed"] is True
    failed = check(auc_floor, 0.69, 0.8, "UA")
    assert failed["passed"] is False
    assert describe(failed) == ("slice UA: candidate auc = 0.69 fails value threshold auc>=0.7")
    assert describe(failed, "carrier").startswith("slice carrier=UA: candidate auc = 0.69")
    drop = check(parse_threshold("auc>=-0.01", "change"), 0.70, 0.72)
    assert drop["passed"] is False and drop["change"] == pytest.approx(-0.02, abs=1e-15)
    assert describe(drop) == ("overall: candidate 0.7 vs blessed 0.72, change -0.02 fails "
                              "change threshold auc>=-0.01")
    rel = check(parse_threshold("logloss<=+2%", "change"), 0.51, 0.5)
    assert rel["passed"] is True and rel["change"] == pytest.approx(0.02, abs=1e-12)
    assert check(parse_threshold("logloss<=+2%", "change"), 0.5101, 0.5)["passed"] is False
    assert [parse_threshold(t, "change").text for t in ("auc>=0.5", "logloss<=2%")] == [
        "auc>=+0.5", "logloss<=+2%"]
    assert check(parse_threshold("rmse<=+1%", "change"), 1.0, 0.0)["reason"] == (
        "the blessed rmse is 0: no relative change")
    undefined = check(auc_floor, None, None, 3)
    assert undefined["passed"] is False and undefined["reason"] == "auc is undefined on these rows"


def test_checks_cover_every_slice_and_skip_change_without_a_baseline():
    ths = [parse_threshold("auc>=0.6", "value"), parse_threshold("auc>=-0.05", "change")]
    cand = {"overall": {"auc": 0.7}, "slices": {"1": {"auc": 0.65}, "2": {"auc": 0.55}}}
    base = {"overall": {"auc": 0.72}, "slices": {"1": {"auc": 0.6}, "2": {"auc": 0.62}}}
    first = run_checks(ths, cand, None, [1, 2])
    assert [(c["kind"], c["slice"], c["passed"]) for c in first] == [
        ("value", None, True), ("value", 1, True), ("value", 2, False)]
    later = run_checks(ths, cand, base, [1, 2])
    assert [(c["kind"], c["slice"], c["passed"]) for c in later if not c["passed"]] == [
        ("value", 2, False), ("change", 2, False)]
