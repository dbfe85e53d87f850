"""Drift history, configurable thresholds, alerts and attribution drift (issue #21, points
4 and 5): the numbers of the attribution comparison, the flags refused before a pipeline
starts, attributions of the two model types on the flights slice, and one pipeline run of
the monitor on a perturbed copy whose alert reaches a local on_alert command on stdin and
whose history rows reach the artifact and the lineage store."""
from __future__ import annotations

import json
import math
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from beam_jobs.monitor import alerts, attribution, stats, thresholds
from beam_jobs.monitor.__main__ import main
from beam_jobs.monitor.model import PREDICTION
from mlbatch.artifacts.base import ArtifactError
from mlbatch.artifacts.drift_history import HistoryRow, load_history
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.models import load_model
from mlbatch.artifacts.monitor import load_alert, load_monitor
from mlbatch.schema import load_schema
from pipelines.lineage import LineageStore
from pipelines.lineage.drift_history import get_history
from tests.conftest import REPO_ROOT, perturb_flights

SCHEMA = load_schema(REPO_ROOT / "schemas" / "flights.yaml")


def _columns():
    label = stats.Column("arr_delay", "categorical", stage="label")
    prediction = stats.Column(PREDICTION, "numeric", stage="prediction")
    return [*stats.raw_columns(SCHEMA), label, prediction]


# --- thresholds ------------------------------------------------------------------------------
def test_thresholds_set_features_label_prediction_and_attributions():
    given = thresholds.parse(["distance=0.1", "label=0.05", "prediction=0.2",
                              "attribution=0.15", "attribution/distance_z=0.02"])
    cols, attr = thresholds.apply(given, _columns(), ("distance_z", "carrier_id"))
    by = {(c.stage, c.name): c.threshold for c in cols}
    assert by[("raw", "distance")] == 0.1
    assert by[("label", "arr_delay")] == 0.05
    assert by[("prediction", PREDICTION)] == 0.2
    assert by[("raw", "carrier")] == 0.3  # untouched: the schema's default
    assert attr == {"distance_z": 0.02, "carrier_id": 0.15}


@pytest.mark.parametrize("items, message", [
    (["nosuch=0.1"], "'nosuch': no such column"),
    (["attribution=0.1"], "'attribution': no such column"),  # no --attributions
    (["distance=0"], "VALUE a number in (0, 1]"),
    (["distance=1.5"], "VALUE a number in (0, 1]"),
    (["distance=nan"], "VALUE a number in (0, 1]"),
    (["distance"], "expected NAME=VALUE"),
    (["distance=0.1", "distance=0.2"], "'distance' is given twice"),
])
def test_bad_thresholds_are_named(items, message):
    with pytest.raises(thresholds.ThresholdError, match=None) as e:
        thresholds.apply(thresholds.parse(items), _columns())
    assert message in str(e.value)


# --- the attribution comparison --------------------------------------------------------------
def test_attribution_distance_and_its_sample_size_aware_null():
    # reference: a has mean |a| 2 (sd 1), b mean 1 (sd 0); total 3. current a: mean 3.
    small = attribution.compare({"a": [4, 8, 20], "b": [4, 4, 4]},
                                {"a": [2, 6, 18], "b": [2, 2, 2]}, {"a": 0.3})
    a, b = small
    assert (a.stage, a.metric, a.n_reference, a.n_current) == ("attribution", "attr", 4, 2)
    assert a.distance == pytest.approx(1 / 3)
    assert a.null_p99 == pytest.approx(attribution.Z_99 * math.sqrt(1 / 4 + 1 / 2) / 3)
    assert not a.breach  # above the threshold, but 4 and 2 rows cannot tell
    assert (b.distance, b.null_p99, b.breach) == (0.0, 0.0, False)
    large = attribution.compare({"a": [400, 800, 2000], "b": [400, 400, 400]},
                                {"a": [200, 600, 1800], "b": [200, 200, 200]}, {})
    assert large[0].null_p99 == pytest.approx(attribution.Z_99 * math.sqrt(1 / 400 + 1 / 200) / 3)
    assert large[0].breach and not large[1].breach


def test_a_period_already_in_the_history_is_refused():
    row = HistoryRow("2013-10", "skew", None, "r", "raw", "distance", "js", 0.1, 0.3, 0.01,
                     10, 10, "ok")
    with pytest.raises(ArtifactError, match="already holds period '2013-10'"):
        alerts.check_new_period([row], "2013-10", "skew")
    alerts.check_new_period([row], "2013-10", "drift")  # another mode: a new row


# --- attributions on the flights slice -------------------------------------------------------
def _train(features) -> pa.Table:
    fs = load_feature_set(features)
    return pa.concat_tables([pq.read_table(f) for f in fs.files("train")])


def test_xgboost_attributions_sum_to_the_margin(flights_xgboost, flights_features):
    import xgboost as xgb
    model, table = load_model(flights_xgboost), _train(flights_features)
    names, contribs = attribution.xgboost_contributions(model, table)
    x = np.stack([table.column(n).to_numpy().astype(np.float32) for n in names], axis=1)
    margin = model.trained.booster.predict(xgb.DMatrix(x, feature_names=list(names)),
                                           output_margin=True)
    assert contribs.shape == (table.num_rows, len(names) + 1)
    np.testing.assert_allclose(contribs.sum(axis=1), margin, rtol=0, atol=1e-4)
    probability = 1 / (1 + np.exp(-contribs.sum(axis=1)))
    np.testing.assert_allclose(probability, model.predict_stored(table), rtol=0, atol=1e-5)


@pytest.mark.parametrize("which", ["flights_xgboost", "flights_jax"])
def test_a_shifted_important_feature_moves_its_attribution_more(which, request,
                                                                flights_features):
    model, table = load_model(request.getfixturevalue(which)), _train(flights_features)
    base = attribution.summarize(*attribution.attributions(model, table))
    numeric = [n for n in model.float_columns if n.endswith("_z")]
    mean = {n: base[n][1] / base[n][0] for n in numeric}
    used = [n for n in numeric if mean[n] > 0]
    important, unimportant = max(used, key=mean.get), min(used, key=mean.get)

    def moved(name: str) -> float:  # the feature shifted by one training sd
        i = table.column_names.index(name)
        shifted = table.set_column(i, name, pc.add(table.column(name), 1.0))
        after = attribution.summarize(*attribution.attributions(model, shifted))
        return next(e.distance for e in attribution.compare(base, after, {}) if e.name == name)

    assert important != unimportant
    assert moved(important) > 2 * moved(unimportant)


# --- flags refused before the pipeline starts ------------------------------------------------
def test_history_and_threshold_errors_exit_2_before_the_job(flights_monitor_skew, flights_slice,
                                                             flights_features, flights_xgboost,
                                                             tmp_path, capsys):
    skew_out = flights_monitor_skew[1]
    period = load_history(skew_out)[0].period
    base = ["--baseline", str(flights_features), "--input", str(flights_slice)]
    cases = [
        (["--history", str(skew_out), "--period", period], f"already holds period '{period}'"),
        (["--threshold", "carrier=2"], "--threshold 'carrier=2'"),
        (["--attributions"], "--attributions needs --model"),
        (["--model", str(flights_xgboost), "--attributions", "--against", str(skew_out)],
         "holds no attributions"),
    ]
    for i, (extra, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert main([*base, "--output", str(out), *extra]) == 2, extra
        assert message in capsys.readouterr().err
        assert not out.exists()  # refused before the output was claimed


# --- one pipeline run: breach -> history, alert, on_alert, lineage ---------------------------
RECEIVER = """import sys, pathlib
pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())
"""


@pytest.fixture(scope="module")
def alert_run(flights_monitor_skew, flights_slice, flights_features, flights_xgboost,
              tmp_path_factory):
    from pipelines.__main__ import main as pipelines_main

    root = tmp_path_factory.mktemp("alert_run")
    perturb_flights(flights_slice, root / "raw")
    (root / "receive.py").write_text(RECEIVER)
    spec = {"pipeline": "alerts",
            "on_alert": [sys.executable, str(root / "receive.py"), str(root / "received.json")],
            "steps": {"monitor": {"job": "beam_jobs.monitor", "args": {
                "baseline": str(flights_features), "input": str(root / "raw"),
                "model": str(flights_xgboost), "attributions": True,
                "history": str(flights_monitor_skew[1]), "period": "2013-10",
                "threshold": ["carrier=0.5", "prediction=0.05", "attribution=0.05"]}}}}
    (root / "alerts.yaml").write_text(json.dumps(spec))  # JSON is YAML
    argv = ["run", str(root / "alerts.yaml"), "--output", str(root / "run")]
    rc = pipelines_main(argv)
    first = json.loads((root / "run" / "run.json").read_text())
    received = json.loads((root / "received.json").read_text())
    (root / "received.json").unlink()
    rerun = pipelines_main(argv)
    return {"root": root, "rc": rc, "rerun": rerun, "received": received, "first": first,
            "out": root / "run" / "monitor", "skew": flights_monitor_skew[1]}


def test_a_breach_is_alerted_to_the_on_alert_command(alert_run):
    assert alert_run["rc"] == 0  # exit 3 (breach) is a committed verdict, not a failure
    out = alert_run["out"]
    alert = load_alert(out)
    assert alert_run["received"] == {"pipeline": "alerts", "step": "monitor", **alert}
    assert alert["exit_status"] == 3 and alert["period"] == "2013-10"
    assert {(b["stage"], b["name"]) for b in alert["breached"]} == {
        ("raw", "distance"), ("transformed", "distance_z"), ("transformed", "distance_bucket"),
        ("transformed", "carrier_id")}  # raw carrier (L-inf 0.33) stays under its 0.5
    for b in alert["breached"]:
        assert b["distance"] > b["threshold"] and b["distance"] > b["null_p99"]
    run = alert_run["first"]
    assert run["steps"][0]["status"] == "done" and run["steps"][0]["key_figures"]["alert"] == "sent"


def test_a_cached_step_alerts_no_second_time(alert_run):
    assert alert_run["rerun"] == 0
    run = json.loads((alert_run["root"] / "run" / "run.json").read_text())
    assert run["steps"][0]["status"] == "cached"
    assert not (alert_run["root"] / "received.json").exists()


def test_the_history_gains_one_row_per_comparison(alert_run):
    out, skew = alert_run["out"], alert_run["skew"]
    carried, rows = load_history(skew), load_history(out)
    assert rows[:len(carried)] == carried
    new = rows[len(carried):]
    doc = load_monitor(out).drift
    stages = [r.stage for r in new]
    assert {s: stages.count(s) for s in set(stages)} == {
        "raw": 19, "transformed": 24, "label": 1, "prediction": 1, "attribution": 24}
    assert len(doc["features"]) + 2 + len(doc["attribution_drift"]) == len(new) == 69
    assert {(r.period, r.mode, r.run) for r in new} == {("2013-10", "skew", str(out))}
    by = {(r.stage, r.name): r for r in new}
    assert by[("raw", "carrier")].threshold == 0.5 and by[("raw", "carrier")].verdict == "ok"
    assert by[("prediction", PREDICTION)].threshold == 0.05
    assert {r.threshold for r in new if r.stage == "attribution"} == {0.05}
    assert by[("transformed", "carrier_id")].verdict == "breach"
    assert sum(r.verdict == "breach" for r in new) == 4
    for r in new:
        assert r.metric in ("linf", "js", "attr") and r.n_reference > 0 and r.n_current > 0
    assert "attribution/distance_z" in load_monitor(out).histograms


def test_the_lineage_store_holds_the_runs_own_rows(alert_run):
    with LineageStore(alert_run["root"] / "run" / "lineage.sqlite") as store:
        recorded = get_history(store)
    own = [r for r in load_history(alert_run["out"]) if r.period == "2013-10"]
    key = lambda r: (r.stage, r.name)  # noqa: E731
    assert sorted(recorded, key=key) == sorted(own, key=key)


def test_exit_3_commits_an_alert_and_exit_0_none(flights_monitor_drift, flights_monitor_skew):
    code, out = flights_monitor_drift
    alert = load_alert(out)
    assert code == alert["exit_status"] == 3 and alert["mode"] == "drift"
    assert {b["name"] for b in alert["breached"]} >= {"distance", "carrier"}
    assert flights_monitor_skew[0] == 0 and load_alert(flights_monitor_skew[1]) is None
    rows = load_history(out)  # no --history: this run's rows only
    assert {r.mode for r in rows} == {"drift"} and len(rows) == len(load_monitor(out).drift["features"]) + 1


@pytest.mark.parametrize("value, expected", [
    ('"notify --to ml-oncall"', ("notify", "--to", "ml-oncall")),
    ('["notify", "a b"]', ("notify", "a b")),
    (None, ()),
])
def test_on_alert_in_the_pipeline_file(value, expected):
    from pipelines.spec import parse_pipeline
    text = ("pipeline: p\n" + (f"on_alert: {value}\n" if value else "")
            + "steps:\n  m:\n    job: beam_jobs.monitor\n    args: {baseline: b, input: i}\n")
    assert parse_pipeline(text).on_alert == expected


@pytest.mark.parametrize("value", ["[]", "[1, 2]", "{cmd: x}", '"unclosed \\"quote"'])
def test_a_bad_on_alert_is_named(value):
    from pipelines.spec import SpecError, parse_pipeline
    text = (f"pipeline: p\non_alert: {value}\n"
            "steps:\n  m:\n    job: beam_jobs.monitor\n    args: {baseline: b, input: i}\n")
    with pytest.raises(SpecError, match="field 'on_alert'"):
        parse_pipeline(text)
