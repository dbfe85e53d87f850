"""TEST FIXTURES ONLY: ``predictions`` and ``monitor`` artifacts in the format of
/work/notes/INTERFACES.md (docs/report.md), written without the scoring and monitoring
jobs so the report's Serving section can be exercised before those jobs exist here.

The predictions are real: the flights XGBoost model applied (through its reader) to the
feature eval split. The drift numbers are computed here from train vs eval histograms
of a few features; they are not the monitoring job's output.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch.artifacts import ArtifactWriter, Manifest, write_json
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.xgboost_model import load_xgboost_model
from mlbatch.metrics import auc, logloss


def write_predictions(out: Path, features: Path, model: Path, raw: Path) -> Manifest:
    fs = load_feature_set(features, check_columns=False)
    booster = load_xgboost_model(model)
    t = fs.read_table("eval")
    x = np.column_stack([t[n].to_numpy() for n in booster.feature_names]).astype(np.float32)
    pred = booster.predict(x).astype(float)
    labels = t[fs.label].to_numpy().astype(float)
    w = ArtifactWriter(out, "predictions", job="tests.report.fixture_artifacts")
    w.claim()
    w.input_artifact("features", str(features), "features")
    w.input_artifact("model", str(model), "xgboost_model")
    w.input_file("raw:flights", str(raw / "flights.csv"))
    ids = [str(v) for v in t["example_id"].to_pylist()]
    (out / "predictions").mkdir()
    pq.write_table(pa.table({
        "example_id": pa.array(ids, pa.string()), "prediction": pa.array(pred, pa.float64()),
        "label": pa.array(labels, pa.float64()),
        "model_digest": pa.array([booster.manifest.digest] * len(ids), pa.string()),
        "transform_digest": pa.array([fs.digest] * len(ids), pa.string())}),
        out / "predictions" / "part-00000-of-00001.parquet")
    (out / "vertex").mkdir()
    (out / "vertex" / "prediction.results-00000-of-00001").write_text("".join(
        json.dumps({"key": k, "prediction": p}) + "\n" for k, p in zip(ids, pred)))
    write_json(str(out / "summary.json"), {"read": len(ids) + 2, "scored": len(ids),
                                           "dead_letter": 2})
    w.metrics.update(rows_read=len(ids) + 2, rows_scored=len(ids), rows_dead_letter=2,
                     auc=auc(labels, pred), logloss=logloss(labels, pred))
    return w.commit(body={"predictions": "predictions", "vertex": "vertex",
                          "summary": "summary.json"}, rows={"predictions": len(ids)})


def _linf(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a / a.sum() - b / b.sum())))


def drift_entry(name: str, ref: np.ndarray, cur: np.ndarray, threshold: float) -> dict:
    distance = _linf(ref, cur)
    return {"name": name, "stage": "transformed", "kind": "categorical", "metric": "linf",
            "distance": distance, "threshold": threshold, "null_p99": 0.0,
            "n_reference": int(ref.sum()), "n_current": int(cur.sum()),
            "breach": distance > threshold}


def write_monitor(out: Path, features: Path, against: Path, *, threshold: float,
                  names: tuple[str, ...] = ("carrier_id", "origin_id", "month_id")) -> Manifest:
    """A drift check of the eval split against train (``threshold`` decides breaches)."""
    fs = load_feature_set(features, check_columns=False)
    train, eval_ = fs.read_table("train", list(names)), fs.read_table("eval", list(names))
    entries, hists = [], {}
    for n in names:
        card = next(f.cardinality for f in fs.features if f.name == n)
        ref = np.bincount(train[n].to_numpy(), minlength=card).astype(float)
        cur = np.bincount(eval_[n].to_numpy(), minlength=card).astype(float)
        entries.append(drift_entry(n, ref, cur, threshold))
        hists[f"transformed/{n}"] = {"kind": "categorical", "values": list(range(card)),
                                     "reference": ref.tolist(), "current": cur.tolist()}
    breach = any(e["breach"] for e in entries)
    drift = {"mode": "drift", "verdict": "breach" if breach else "ok",
             "baseline": str(features), "against": str(against),
             "n_reference": train.num_rows, "n_current": eval_.num_rows, "features": entries,
             "transform_skew": {"sampled": 100, "mismatches": 0, "features": []},
             "prediction_drift": None, "label_drift": None}
    w = ArtifactWriter(out, "monitor", job="tests.report.fixture_artifacts")
    w.claim()
    w.input_artifact("baseline", str(features), "features")
    w.input_artifact("against", str(against))
    write_json(str(out / "drift.json"), drift)
    write_json(str(out / "histograms.json"), hists)
    (out / "anomalies.pbtxt").write_text("")
    w.metrics.update(features_checked=len(entries),
                     features_breached=sum(e["breach"] for e in entries),
                     verdict=drift["verdict"])
    return w.commit(body={"drift": "drift.json", "histograms": "histograms.json",
                          "anomalies": "anomalies.pbtxt"})
