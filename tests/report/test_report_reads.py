"""The report reads like a report (issue #22 point 4), checked piece by piece without a
job run: formatted key figures and short digests, vocabulary labels checked against the
raw CSV, drift ordering, partial and finished runs, excluded reasons, model baselines,
the registry and comparison hooks."""
from __future__ import annotations

import csv
import math
import numpy as np
import pyarrow as pa
import pytest

from mlbatch.artifacts.features import load_feature_set, read_vocabulary
from pipelines.report.blocks import Table, Text, fmt, short_digest, table
from pipelines.report.header import header_section, key_figures
from pipelines.report.registry import check_rows, evaluation_blocks
from pipelines.report.render import to_html, to_markdown
from pipelines.report.run import load_run
from pipelines.report.serving import MAX_DRIFT_PANELS, drift_rows, panel_order, top_values
from tests.report.conftest import step, write_run_json

DIGEST = "sha256:" + "ab" * 32


def test_key_figures_read_as_text_not_python():
    figures = {"type": "cooccurrence_evaluation", "digest": DIGEST, "rows": 1234567,
               "auc": 0.72151, "wordsim353": {"ours": 0.2651, "w2v": -0.2098},
               "best_trial": "t_1", "verdict": None}
    assert key_figures(figures) == ("rows 1,234,567, auc 0.7215, wordsim353 ours 0.2651, "
                                    "w2v -0.2098, best_trial t_1, verdict –")
    assert key_figures({}) == "–"
    assert fmt([1500, 2.5]) == "1,500, 2.5"


def test_a_short_digest_keeps_the_full_one_on_hover_only():
    t = table(["step", "digest"], [["xgboost", short_digest(DIGEST)]])
    page = to_html("t", [_section(t)])
    md = to_markdown("t", [_section(t)])
    assert f'<abbr title="{DIGEST}">{"ab" * 6}</abbr>' in page
    assert f"| xgboost | {'ab' * 6} |" in md and "ab" * 7 not in md


def _section(*blocks):
    from pipelines.report.blocks import Section
    return Section("s", "S", tuple(blocks))


def test_vocabulary_labels_are_the_raw_values(flights_features):
    """carrier_id of every train row, read back through the vocabulary, is the carrier
    its raw CSV line holds (example_id = file:line)."""
    fs = load_feature_set(flights_features, check_columns=False)
    carrier = next(f for f in fs.features if f.name == "carrier_id")
    vocab = read_vocabulary(fs, carrier)
    assert len(vocab) == carrier.cardinality - 1  # one OOV bucket past the vocabulary
    train = fs.read_table("train", ["example_id", "carrier_id"]).to_pylist()
    path = train[0]["example_id"].rsplit(":", 1)[0]
    with open(path, newline="") as f:
        lines = {i: r["carrier"] for i, r in enumerate(csv.DictReader(f), start=2)}
    assert [vocab[r["carrier_id"]] for r in train] == [
        lines[int(r["example_id"].rsplit(":", 1)[1])] for r in train]
    hashed = next(f for f in fs.features if f.transform == "hash")
    assert read_vocabulary(fs, hashed) is None  # ids of a hash stay ids


def test_category_panels_name_values_and_keep_the_rest_as_other():
    h = {"values": ["UA", "B6", "a very long manufacturer name", "EV"],
         "reference": [10, 30, 5, 1], "current": [0, 20, 20, 0]}
    labels, ref, cur = top_values(h, n=2)
    assert labels == ["B6", "a very long…", "other (2)"]
    assert ref == [30, 5, 11] and cur == [20, 20, 0]
    buckets = {"values": ["3", "0", "1", "2"], "reference": [1, 9, 5, 0], "current": [1, 1, 1, 1]}
    assert top_values(buckets, n=3, ordered=True)[0] == ["0", "1", "3", "other (1)"]


def _drift(n_breached: int, n_ok: int) -> tuple[dict, dict]:
    feats = [{"name": f"b{i}", "stage": "raw", "distance": 0.4 + i / 100, "threshold": 0.3,
              "breach": True} for i in range(n_breached)]
    feats += [{"name": f"a{i}", "stage": "raw", "distance": 0.9 - i / 100, "threshold": 5.0,
               "breach": False} for i in range(n_ok)]
    hist = {f"raw/{f['name']}": {"reference": [1], "current": [1]} for f in sorted(
        feats, key=lambda f: f["name"])}  # alphabetical, as a monitor writes them
    return {"features": feats, "label_drift": {"name": "delayed", "stage": "label",
                                               "distance": 0.01, "threshold": 0.3,
                                               "breach": False}}, hist


def test_drift_table_breaches_first_then_by_distance():
    drift, _ = _drift(2, 2)
    rows = drift_rows(drift)
    assert [(r[0], r[-1]) for r in rows] == [("b1", "BREACH"), ("b0", "BREACH"), ("a0", "ok"),
                                             ("a1", "ok"), ("delayed", "ok")]
    # breaches by distance / threshold (1.37, 1.33), then the rest (0.18, 0.178, 0.033)


def test_every_breached_feature_gets_a_histogram_even_past_the_panel_limit():
    drift, hist = _drift(MAX_DRIFT_PANELS + 3, 5)
    order = panel_order(drift, hist)
    assert len(order) == MAX_DRIFT_PANELS + 3
    assert order == [f"raw/b{i}" for i in reversed(range(MAX_DRIFT_PANELS + 3))]
    drift, hist = _drift(1, 30)
    order = panel_order(drift, hist)
    assert order[0] == "raw/b0" and len(order) == MAX_DRIFT_PANELS


def test_an_only_run_shows_no_upstream_alerts_and_reads_finished(tmp_path):
    """`--only report`: every other step skipped, not selected (the runner records no error)."""
    steps = [step("features", "beam_jobs.features", "local", [], status="skipped"),
             step("xgboost", "ray_jobs.xgboost", "local", ["features"], status="skipped"),
             step("score", "beam_jobs.score", "local", ["xgboost"], status="skipped"),
             step("report", "pipelines.report", "local", ["score"], status="running")]
    write_run_json(tmp_path, steps, status="running")
    section = header_section(load_run(str(tmp_path)), [])
    texts = [b for b in section.blocks if isinstance(b, Text)]
    assert [(t.kind, t.text) for t in texts] == [
        ("ok", "No step ran before this report (3 not selected in this run); no drift "
               "threshold was breached.")]
    tables = [b for b in section.blocks if isinstance(b, Table)]
    facts = dict(tables[0].rows)
    assert facts["status"] == "succeeded (every step finished; this report is its last step, " \
                              "report)"
    assert [r[3] for r in tables[1].rows] == ["not run (not selected)"] * 3 + ["running"]


def test_a_step_skipped_after_a_failure_is_still_an_alert(tmp_path):
    from pipelines.report.header import alerts
    steps = [step("features", "beam_jobs.features", "local", [], status="failed",
                  error="exit 2: bad row"),
             step("xgboost", "ray_jobs.xgboost", "local", ["features"], status="skipped"),
             step("score", "beam_jobs.score", "local", ["xgboost"], status="skipped",
                  error="upstream xgboost has no output")]
    write_run_json(tmp_path, steps, status="failed")
    assert alerts(load_run(str(tmp_path)), []) == [
        "The run failed (1 failed step(s)).",
        "Step features (beam_jobs.features) failed: exit 2: bad row",
        "Step xgboost was skipped: an upstream step failed.",
        "Step score was skipped: upstream xgboost has no output."]


def test_excluded_rows_are_counted_per_reason():
    from pipelines.report.data import excluded_rows
    t = pa.table({"example_id": ["f.csv:9", "f.csv:3", "f.csv:4"],
                  "reason": ["label source 'arr_delay' is missing", "label source "
                             "'arr_delay' is missing", "month outside the window"]})
    assert excluded_rows(t, "flights") == [
        ["flights", "label source 'arr_delay' is missing", 2, "f.csv:3", None],
        ["flights", "month outside the window", 1, "f.csv:4", None]]
    assert excluded_rows(None, "flights") == []


def _evaluation(decision: str) -> dict:
    checks = [{"metric": "auc", "kind": "value", "op": ">=", "threshold": 0.6,
               "relative": False, "text": "auc>=0.6", "slice": None, "candidate": 0.71,
               "baseline": 0.72, "change": None, "passed": True},
              {"metric": "auc", "kind": "change", "op": ">=", "threshold": -0.005,
               "relative": False, "text": "auc>=-0.005", "slice": None, "candidate": 0.71,
               "baseline": 0.72, "change": -0.01, "passed": decision == "blessed"},
              {"metric": "logloss", "kind": "change", "op": "<=", "threshold": 0.02,
               "relative": True, "text": "logloss<=+2%", "slice": "UA", "candidate": 0.5,
               "baseline": 0.5, "change": 0.0, "passed": True}]
    return {"name": "flights_delay", "decision": decision, "eval_rows": 1608,
            "slice_column": "carrier",
            "candidate": {"version": 3, "uri": "/m/3", "digest": DIGEST},
            "baseline": {"version": 2, "uri": "/m/2", "digest": DIGEST},
            "checks": checks, "failed": [c for c in checks if not c["passed"]],
            "skipped_slices": [{"slice": "OO", "rows": 4, "reason": "fewer than 50 rows"}]}


def test_a_refused_candidate_says_which_threshold_failed_with_both_numbers():
    blocks = evaluation_blocks("bless", _evaluation("refused"))
    assert (blocks[0].kind, blocks[0].text) == (
        "alert", "bless: flights_delay version 3 is refused (overall auc>=-0.005: candidate "
                 "0.71, blessed 0.72); version 2 stays blessed.")
    checks = blocks[2]
    assert checks.rows[0] == ("auc", "change", "overall", "auc>=-0.005", "0.71", "0.72",
                              "-0.01", "FAIL")
    assert checks.rows[2][:4] == ("logloss", "change", "slice UA", "logloss<=+2%")
    assert checks.rows[2][6] == "+0%"
    assert blocks[3].rows == (("OO", "4", "fewer than 50 rows"),)


def test_a_blessed_candidate_reads_blessed():
    blocks = evaluation_blocks("bless", _evaluation("blessed"))
    assert (blocks[0].kind, blocks[0].text) == (
        "ok", "bless: flights_delay version 3 is blessed (every threshold passed on 1,608 "
              "eval rows); the blessed alias points to it.")
    assert [r[-1] for r in check_rows(_evaluation("blessed")["checks"])] == ["pass"] * 3


def test_baseline_metrics_are_those_of_a_constant_prediction(flights_features):
    from mlbatch import metrics
    from pipelines.report.models import baseline
    fs = load_feature_set(flights_features, check_columns=False)
    train = fs.read_table("train", ["delayed"])["delayed"].to_numpy().astype(float)
    eval_ = fs.read_table("eval", ["delayed"])["delayed"].to_numpy().astype(float)
    name, values = baseline(fs)
    p = train.mean()
    assert name == f"baseline: train base rate delayed = {p:.4g}"
    assert values["auc"] == 0.5
    assert math.isclose(values["logloss"], -np.mean(eval_ * np.log(p)
                                                     + (1 - eval_) * np.log(1 - p)))
    assert p < 0.5 and values["accuracy"] == metrics.accuracy(eval_, np.zeros_like(eval_))


@pytest.mark.parametrize("value,text", [(1234567, "1,234,567"), (0.5, "0.5"),
                                        (12345.6, "12,346"), (None, "–"), (True, "yes"),
                                        (1720924.4, "1,720,924")])  # a loss in dollars
def test_one_formatter_for_every_number(value, text):
    assert fmt(value) == text
