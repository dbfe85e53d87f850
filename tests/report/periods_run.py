"""A run directory of serving over time, written through the artifacts' own writers
(``ArtifactWriter``, ``mlbatch.artifacts.drift_history.history_rows`` and
``history_document``): three monthly monitors against training, each carrying the
previous ones' history, one monitor against the previous month, and three late-label
evaluations; every step reads real files (input_file hashes them)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.base import write_json
from mlbatch.artifacts.drift_history import HISTORY, history_document, history_rows
from mlbatch.artifacts.monitor import DRIFT, HISTOGRAMS
from tests.report.conftest import step, write_run_json

PERIODS = ("2013-10", "2013-11", "2013-12")
# (stage, name, metric, threshold, null_p99, distance per period vs training)
SKEW = (("raw", "distance", "linf", 0.1, 0.03, (0.02, 0.05, 0.30)),
        ("raw", "temp", "js", 0.1, 0.04, (0.08, 0.12, 0.09)),
        ("raw", "carrier", "linf", 0.1, 0.02, (0.01, 0.02, 0.015)),
        ("label", "label", "js", 0.3, 0.01, (0.01, 0.02, 0.05)),
        ("prediction", "prediction", "js", 0.3, 0.01, (0.02, 0.03, 0.04)),
        ("attribution", "distance", "attr", 0.05, 0.0, (0.01, 0.02, 0.2)))
# vs the previous month (2013-12 against 2013-11)
DRIFT_DEC = {"distance": 0.25, "temp": 0.06, "carrier": 0.01, "label": 0.04,
             "prediction": 0.02}
# per period: out-of-time AUC, logloss, rows joined; the eval split's AUC and logloss
OUT_OF_TIME = {"2013-10": (0.74, 0.55, 2650), "2013-11": (0.71, 0.58, 2400),
               "2013-12": (0.69, 0.60, 2700)}
EVAL_SPLIT = (0.78, 0.52)


def _entry(stage, name, metric, threshold, null_p99, distance) -> dict:
    return {"stage": stage, "name": name, "kind": "numeric", "metric": metric,
            "distance": distance, "threshold": threshold, "null_p99": null_p99,
            "n_reference": 2352, "n_current": 900,
            "breach": distance > max(threshold, null_p99)}


def drift_doc(mode: str, entries: list[dict], against: str | None = None) -> dict:
    """A drift.json document in the monitor job's layout (docs/monitoring.md)."""
    by_stage = {e["stage"]: e for e in entries if e["stage"] in ("label", "prediction")}
    features = [e for e in entries if e["stage"] in ("raw", "transformed")]
    breach = any(e["breach"] for e in entries)
    return {"mode": mode, "verdict": "breach" if breach else "ok", "against": against,
            "baseline": None, "n_reference": 2352, "n_current": 900,
            "features": features, "label_drift": by_stage.get("label"),
            "prediction_drift": by_stage.get("prediction"),
            "attribution_drift": [e for e in entries if e["stage"] == "attribution"]}


def raw_file(root: Path, period: str, kind: str) -> Path:
    path = root / "data" / kind / f"period={period}" / "flights.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    label = ",delayed" if kind == "labelled" else ""
    path.write_text(f"year,month,carrier{label}\n2013,{period[-2:]},UA{label and ',1'}\n")
    return path


def write_monitor(out: Path, doc: dict, period: str | None, carried: list, raw: Path) -> list:
    """A committed monitor artifact; returns its history rows (carried + its own)."""
    w = ArtifactWriter(out, "monitor", job="beam_jobs.monitor")
    w.claim()
    w.input_file("raw:flights", str(raw))
    own_period = period or raw.stem
    rows = [*carried, *history_rows(doc, period=own_period, run=w.root)]
    write_json(str(out / DRIFT), doc)
    write_json(str(out / HISTOGRAMS), {})
    write_json(str(out / HISTORY), history_document(rows))
    w.metrics.update(rows_read=905, rows_current=900, rows_dead_letter=5,
                     verdict=doc["verdict"])
    w.commit(body={"history": HISTORY, "period": own_period, "mode": doc["mode"],
                   "verdict": doc["verdict"], "drift": DRIFT, "histograms": HISTOGRAMS})
    return rows


def write_evaluation(out: Path, period: str, labels: Path) -> None:
    auc, logloss, joined = OUT_OF_TIME[period]
    w = ArtifactWriter(out, "evaluation", job="beam_jobs.evaluate")
    w.claim()
    w.input_file("labels:flights", str(labels))
    for part, column in (("keys", "example_id"), ("labels", "label")):  # the job's layout
        (out / part).mkdir()
        pq.write_table(pa.table({"year": [2013], "month": [int(period[-2:])],
                                 "carrier": ["UA"], column: [f"{labels}:2" if
                                                             column == "example_id" else 1.0]}),
                       out / part / "part-00000.parquet")
    w.metrics.update(rows_scored=joined + 10, rows_labels=joined + 4, rows_joined=joined,
                     rows_scored_unlabelled=10, rows_labels_unscored=4, auc=auc,
                     logloss=logloss, eval_split_auc=EVAL_SPLIT[0],
                     eval_split_logloss=EVAL_SPLIT[1])
    w.commit(body={"period": period, "identity": ["year", "month", "carrier"],
                   "task": "binary_classification", "out_of_time": True})


def periods_run(root: Path) -> Path:
    """RUN/ with monitor[P], monitor_prev[2013-12] and evaluate[P] for P in PERIODS."""
    run, steps, carried = root / "run", [], []
    for i, period in enumerate(PERIODS):
        entries = [_entry(s, n, m, t, p, d[i]) for s, n, m, t, p, d in SKEW]
        raw = raw_file(root, period, "raw")
        carried = write_monitor(run / f"monitor[{period}]", drift_doc("skew", entries), period,
                                carried, raw)
        steps.append(step(f"monitor[{period}]", "beam_jobs.monitor", "local", []))
    prev = [_entry(s, n, m, t, p, DRIFT_DEC[n]) for s, n, m, t, p, _ in SKEW
            if s != "attribution"]
    write_monitor(run / "monitor_prev[2013-12]", drift_doc(
        "drift", prev, against=str(run / "monitor[2013-11]")), "2013-12", [],
        raw_file(root, "2013-12", "raw"))
    steps.append(step("monitor_prev[2013-12]", "beam_jobs.monitor", "local", []))
    for period in PERIODS:
        write_evaluation(run / f"evaluate[{period}]", period, raw_file(root, period, "labelled"))
        steps.append(step(f"evaluate[{period}]", "beam_jobs.evaluate", "local", []))
    write_run_json(run, steps)
    return run


def unperiodised_run(root: Path) -> Path:
    """Three monitors without --period (each records its file's stem, "flights") under
    step names without brackets."""
    run, steps = root / "run", []
    for i, name in enumerate(("monitor_oct", "monitor_nov", "monitor_dec")):
        entries = [_entry(s, n, m, t, p, d[i]) for s, n, m, t, p, d in SKEW[:1]]
        write_monitor(run / name, drift_doc("skew", entries), None, [],
                      raw_file(root, PERIODS[i], "raw"))
        steps.append(step(name, "beam_jobs.monitor", "local", []))
    write_run_json(run, steps)
    return run
