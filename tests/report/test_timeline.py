"""The Over time section (issue #21 point 7): which data every step read, the drift
timeline per feature over three monthly monitors, the out-of-time metric per period;
rendered in headless Chromium and checked on its DOM. And the multiclass confusion matrix
(#23)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.report.__main__ import main
from pipelines.report.models import confusion_of, confusion_table
from pipelines.report.periods import step_periods
from pipelines.report.render import to_html, to_markdown
from pipelines.report.blocks import Section
from pipelines.report.run import load_run
from pipelines.report.timeline import history
from tests.report.periods_run import OUT_OF_TIME, periods_run, unperiodised_run
from tests.report.test_report import SCREENSHOT_DIR, WIDTH, _chromium, probe_and_screenshot

PROBE = """<script>window.addEventListener("load", () => {
  const sec = document.getElementById("timeline");
  const rows = t => [...t.querySelectorAll("tbody tr")].map(
    r => [...r.cells].map(c => c.textContent));
  const out = {
    charts: [...sec.querySelectorAll("svg")].map(s => ({
      title: s.querySelector("text.title").textContent,
      red: s.querySelector("text.title").getAttribute("fill"),
      ticks: [...s.querySelectorAll("text.tick")].map(t => t.textContent),
      breaches: [...s.querySelectorAll("circle.breach title")].map(t => t.textContent),
      width: s.getBoundingClientRect().width})),
    tables: [...sec.querySelectorAll("table")].map(rows),
    hovers: [...sec.querySelectorAll("table")][0].querySelectorAll("abbr").length,
    resources: performance.getEntriesByType("resource").map(e => e.name),
    scrollWidth: document.scrollingElement.scrollWidth};
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""
ONLY_TIMELINE = "<style>section:not(#timeline){display:none}</style>"


@pytest.fixture(scope="module")
def periods_report(tmp_path_factory) -> Path:
    run = periods_run(tmp_path_factory.mktemp("periods"))
    assert main([str(run)]) == 0
    return run / "report"


@pytest.fixture(scope="module")
def timeline_dom(periods_report, chromium, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("chromium_timeline")
    page = (periods_report / "index.html").read_text()
    probe, only = periods_report / "probe.html", periods_report / "only.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    only.write_text(page.replace("</head>", ONLY_TIMELINE + "</head>"))
    shot = tmp / "report_timeline.png"
    try:
        return probe_and_screenshot(chromium, tmp, probe, only, shot, 2100)
    finally:
        only.unlink()


def test_a_drift_timeline_per_feature_breached_first(timeline_dom):
    charts = timeline_dom["charts"]
    drift = [c for c in charts if not c["title"].startswith(("auc", "logloss"))]
    assert [c["title"] for c in drift] == [
        "BREACH raw/distance (linf)", "BREACH raw/temp (js)", "raw/carrier (linf)",
        "label/label (js)", "prediction/prediction (js)", "BREACH attribution/distance (attr)"]
    assert [c["red"] for c in drift] == ["#c0392b", "#c0392b", "#222", "#222", "#222",
                                         "#c0392b"]
    assert all(c["ticks"] == ["2013-10", "2013-11", "2013-12"] for c in charts)
    # December breaches against training (0.30) and against November (0.25)
    assert drift[0]["breaches"] == ["vs training: 0.3", "vs previous: 0.25"]
    assert drift[1]["breaches"] == ["vs training: 0.12"]
    assert drift[5]["breaches"] == ["vs training: 0.2"]
    assert all(not c["breaches"] for c in drift[2:5])
    assert timeline_dom["resources"] == [] and timeline_dom["scrollWidth"] <= WIDTH
    assert (SCREENSHOT_DIR / "report_timeline.png").exists()


def test_the_drift_table_lists_each_feature_once_over_the_periods(timeline_dom):
    drift = timeline_dom["tables"][1]
    assert drift[0] == ["distance", "raw", "linf", "2013-12", "0.3", "0.3", "0.1", "0.25", "0.1"]
    # attributions were not compared with November
    assert drift[1] == ["distance", "attribution", "attr", "2013-12", "0.2", "0.2", "0.05",
                        "–", "–"]
    assert drift[2] == ["temp", "raw", "js", "2013-11", "0.12", "0.09", "0.1", "0.06", "0.1"]
    assert [r[0] for r in drift[3:]] == ["label", "prediction", "carrier"]


def test_every_step_names_the_data_it_read_by_period_and_rows(timeline_dom):
    read = timeline_dom["tables"][0]
    assert [(r[0], r[2], r[3]) for r in read] == [
        ("monitor[2013-10]", "2013-10", "raw:flights: period=2013-10/flights.csv"),
        ("monitor[2013-11]", "2013-11", "raw:flights: period=2013-11/flights.csv"),
        ("monitor[2013-12]", "2013-12", "raw:flights: period=2013-12/flights.csv"),
        ("monitor_prev[2013-12]", "2013-12", "raw:flights: period=2013-12/flights.csv"),
        ("evaluate[2013-10]", "2013-10", "labels:flights: period=2013-10/flights.csv"),
        ("evaluate[2013-11]", "2013-11", "labels:flights: period=2013-11/flights.csv"),
        ("evaluate[2013-12]", "2013-12", "labels:flights: period=2013-12/flights.csv")]
    assert read[0][4:8] == ["905", "900", "–", "5"]
    assert read[4][4:8] == ["2,654", "2,650", "4", "–"]
    assert timeline_dom["hovers"] == 7  # each file's full path and sha256 on hover


def test_out_of_time_metrics_per_period_beside_the_eval_split(timeline_dom, periods_report):
    oot = timeline_dom["tables"][2]
    assert [[r[0], r[2], r[3], r[4]] for r in oot] == [
        [p, f"{n:,}", f"{auc:.2f}", "0.78"] for p, (auc, _, n) in OUT_OF_TIME.items()]
    titles = [c["title"] for c in timeline_dom["charts"]]
    assert titles[-2:] == ["auc per period (out-of-time)", "logloss per period (out-of-time)"]
    md = (periods_report / "report.md").read_text()
    assert "| period | step | rows joined | AUC, out-of-time | auc eval split (training) |" in md
    svg = (periods_report / "figures" / "out-of-time-auc.svg").read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_same_named_files_of_different_periods_are_told_apart_by_path(periods_report):
    from pipelines.report.lineage import build_graph
    run = load_run(str(periods_report.parent))
    nodes = build_graph(run)
    inputs = {n.label: sorted(nodes[k].label for k in n.inputs) for n in nodes.values()}
    assert inputs["monitor[2013-10]"] == ["raw/period=2013-10/flights.csv"]
    assert inputs["monitor_prev[2013-12]"] == ["raw/period=2013-12/flights.csv"]
    assert inputs["evaluate[2013-11]"] == ["labelled/period=2013-11/flights.csv"]
    files = [n.label for n in nodes.values() if n.kind == "file"]
    assert len(files) == len(set(files)) == 6  # one node per file, each named apart


def test_steps_without_a_period_are_their_own_period_in_run_order(tmp_path):
    run = load_run(str(unperiodised_run(tmp_path)))
    names = ["monitor_oct", "monitor_nov", "monitor_dec"]
    # each monitor recorded its file's stem ("flights") as its period: the names stand in
    assert [s.manifest.body["period"] for s in run.steps] == ["flights"] * 3
    assert step_periods(run) == {n: n for n in names}
    rows, periods, problems = history(run)
    assert periods == names and problems == []
    assert [(r.period, r.distance) for r in rows] == list(zip(names, (0.02, 0.05, 0.30)))


def test_periods_are_drawn_in_calendar_order_whatever_order_the_steps_ran(tmp_path):
    """The demo's runner finished drift[2013-11] before monitor[2013-10]: the timeline's
    axis, its 'last period' columns and the out-of-time table still go Oct, Nov, Dec."""
    from pipelines.report.timeline import drift_blocks, out_of_time_blocks, timelines
    root = periods_run(tmp_path)
    doc = json.loads((root / "run.json").read_text())
    doc["steps"] = doc["steps"][::-1]
    (root / "run.json").write_text(json.dumps(doc))
    run = load_run(str(root))
    rows, periods, problems = history(run)
    assert periods == ["2013-10", "2013-11", "2013-12"] and problems == []
    header = drift_blocks(rows, periods)[0].columns
    assert "2013-12 vs training" in header and "2013-12 vs previous" in header
    breached = {t.name: t.breached for t in timelines(rows)}
    assert breached["distance"] == ["2013-12"]
    oot = out_of_time_blocks(run)[0][0]
    assert [r[0] for r in oot.rows] == ["2013-10", "2013-11", "2013-12"]


def test_a_confusion_matrix_is_shaded_by_its_rows_share(chromium, tmp_path):
    true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 2])
    counts = np.zeros((3, 3), dtype=int)
    np.add.at(counts, (true, pred), 1)
    metrics = {"eval": {"confusion_matrix": {"classes": ["none", "citation", "arrest"],
                                             "counts": counts.tolist()}}}
    t = confusion_table("xgboost", confusion_of(metrics))
    assert t.columns == ("true \\ predicted", "none", "citation", "arrest", "rows")
    assert t.rows == (("true none", "3 (75%)", "1 (25%)", "0 (0%)", "4"),
                      ("true citation", "0 (0%)", "2 (67%)", "1 (33%)", "3"),
                      ("true arrest", "1 (20%)", "0 (0%)", "4 (80%)", "5"))
    assert t.shade[0] == (None, 0.75, 0.25, 0.0, None)
    assert t.caption.endswith("accuracy 9 of 12 = 0.75")
    page = to_html("cm", [Section("models", "Models", (t,))])
    assert '<td class="n" style="background:rgba(76,114,176,0.680)">3 (75%)</td>' in page
    assert "| true arrest | 1 (20%) | 0 (0%) | 4 (80%) | 5 |" in to_markdown(
        "cm", [Section("models", "Models", (t,))])
    assert confusion_of({"auc": 0.7}) is None
    (tmp_path / "cm.html").write_text(page)
    shot = tmp_path / "report_confusion.png"
    _chromium(chromium, tmp_path / "p", f"--window-size={WIDTH},320", f"--screenshot={shot}",
              (tmp_path / "cm.html").as_uri()).wait(timeout=120)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / shot.name)


def test_a_chart_skips_missing_and_undefined_values():
    from pipelines.report import svg
    out = svg.line_chart("js", ["2013-10", "2013-11", "2013-12"], [
        svg.Series("vs training", (0.1, float("nan"), None)),
        svg.Series("threshold", (0.2, 0.2, 0.2), dashed=True)])
    assert "nan" not in out.lower() and out.count("<circle") == 1
    assert out.count("<polyline") == 1  # the threshold; one point draws no line
    assert svg.standalone(out).startswith('<svg xmlns="http://www.w3.org/2000/svg" ')


def test_many_files_of_a_role_read_as_their_count_and_folder():
    from pipelines.report.periods import file_names
    flights = [{"uri": f"/d/period=2013-10/part-{i}.csv", "sha256": f"{i:064x}"}
               for i in range(5)]
    planes = [{"uri": "/d/lookups/planes.csv", "sha256": "f" * 64}]
    cell = file_names({"raw:flights": flights, "raw:planes": planes})
    assert cell == "raw:flights: 5 files in period=2013-10; raw:planes: lookups/planes.csv"
    assert cell.full.splitlines()[0] == f"/d/period=2013-10/part-0.csv ({'0' * 12})"
    assert len(cell.full.splitlines()) == 6 and file_names({}) == "–"


def test_a_period_from_the_runners_record_when_the_artifact_has_none(tmp_path):
    from mlbatch.artifacts import ArtifactWriter
    from tests.report.conftest import step, write_run_json
    for name in ("score_a", "score_b"):
        w = ArtifactWriter(tmp_path / name, "predictions", job="beam_jobs.score")
        w.claim()
        w.commit(body={"task": "binary_classification"})
    write_run_json(tmp_path, [step("score_a", "beam_jobs.score", "local", [], period="2013-10"),
                              step("score_b", "beam_jobs.score", "local", [])])
    assert step_periods(load_run(str(tmp_path))) == {"score_a": "2013-10", "score_b": "score_b"}
