"""After the pipeline: the comparison (beam_jobs.monitor.drift on the pipeline's statistics) and the
monitor's files: drift.json, histograms.json and anomalies.pbtxt (tensorflow_metadata
``Anomalies`` with ``drift_skew_info``, as TensorFlow Data Validation writes them)."""
from __future__ import annotations

import numpy as np
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, path_pb2

from beam_jobs.monitor import attribution, drift
from beam_jobs.monitor.stats import Column, compare
from mlbatch import storage

_MEASURE = {"linf": anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY,
            "js": anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE}
_REASON = {"linf": anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
           "js": anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH}


def _stage(result: dict, side: str, stage: str, previous: dict | None) -> dict:
    if side == "Reference" and previous is not None:
        return previous["statistics"]
    return result.get(f"{side}{stage}", {})


def comparisons(result: dict, columns: dict[str, list[Column]], previous: dict | None
                ) -> dict[str, list[drift.FeatureDrift]]:
    """stage ("Raw", "Transformed", "Prediction") -> one FeatureDrift per column."""
    out = {}
    for stage, cols in columns.items():
        if not cols:
            continue
        edges = result[f"edges/{stage.lower()}"]
        out[stage] = compare(_stage(result, "Reference", stage, previous),
                             _stage(result, "Current", stage, previous), cols, edges)
    return out


def histograms(result: dict, columns: dict[str, list[Column]], previous: dict | None) -> dict:
    """histograms.json: per "<stage>/<name>" the counts on both sides (numeric: over the
    standard edges, with 2 overflow buckets: [below, buckets..., above]; plus the quantile
    histogram; categorical: aligned value counts)."""
    out = {}
    for stage, cols in columns.items():
        edges = result.get(f"edges/{stage.lower()}", {})
        ref = _stage(result, "Reference", stage, previous)
        cur = _stage(result, "Current", stage, previous)
        for c in cols:
            r, k = ref.get(c.key), cur.get(c.key)
            if c.kind == "numeric":
                e = edges[c.key]
                zeros = {h: np.zeros(len(v) + 1, np.int64) for h, v in e.items()}
                r, k = r or zeros, k or zeros
                out[c.key] = {"kind": "numeric", "edges": e["standard"].tolist(),
                              "reference": np.asarray(r["standard"]).tolist(),
                              "current": np.asarray(k["standard"]).tolist(),
                              "quantile_edges": e["quantile"].tolist(),
                              "quantile_reference": np.asarray(r["quantile"]).tolist(),
                              "quantile_current": np.asarray(k["quantile"]).tolist()}
            else:
                values, rv, kv = drift.align(r or {}, k or {})
                out[c.key] = {"kind": "categorical", "values": [str(v) for v in values],
                              "reference": rv.tolist(), "current": kv.tolist()}
    return out


def previous_statistics(hist: dict, keys: set[str]) -> dict:
    """A previous monitor output's current window, as reference statistics and edges."""
    stats_, edges = {}, {"raw": {}, "transformed": {}, "prediction": {}}
    attributions = {}
    for key, h in hist.items():
        if h["kind"] == attribution.STAGE:
            attributions[key.split("/", 1)[1]] = h["current"]
        if key not in keys:
            continue
        if h["kind"] == "numeric":
            stats_[key] = {"standard": np.asarray(h["current"], np.int64),
                           "quantile": np.asarray(h["quantile_current"], np.int64)}
            stage = "raw" if key.startswith("label/") else key.split("/", 1)[0]
            edges[stage][key] = {"standard": np.asarray(h["edges"], np.float64),
                                 "quantile": np.asarray(h["quantile_edges"], np.float64)}
        else:
            stats_[key] = {v: int(n) for v, n in zip(h["values"], h["current"]) if n}
    return {"statistics": stats_, "edges": edges, "attribution": attributions}


def attribution_sides(result: dict, previous: dict | None) -> tuple[dict, dict] | None:
    """(reference, current) summed attributions, or None when they were not computed."""
    current = result.get("attribution/Current")
    if current is None:
        return None
    if previous is not None:
        return previous["attribution"], current
    return result["attribution/Reference"], current


def attribution_histograms(sides: tuple[dict, dict] | None) -> dict:
    """histograms.json's "attribution/<feature>": [rows, sum |a|, sum a^2] per side."""
    if sides is None:
        return {}
    ref, cur = sides
    return {f"{attribution.STAGE}/{n}": {"kind": attribution.STAGE, "reference": ref[n],
                                          "current": cur.get(n, [0, 0.0, 0.0])} for n in ref}


def anomalies(entries: list[drift.FeatureDrift], mode: str) -> str:
    """The comparisons as tensorflow_metadata Anomalies (text format)."""
    doc = anomalies_pb2.Anomalies()
    for e in entries:
        info = doc.drift_skew_info.add()
        info.path.CopyFrom(path_pb2.Path(step=[e.stage, e.name]))
        m = (info.skew_measurements if mode == "skew" else info.drift_measurements).add()
        m.type, m.value, m.threshold = _MEASURE[e.metric], e.distance, e.threshold
        if not e.breach:
            continue
        a = doc.anomaly_info[f"{e.stage}/{e.name}"]
        a.severity = anomalies_pb2.AnomalyInfo.ERROR
        a.path.CopyFrom(info.path)
        word = "L-infinity distance" if e.metric == "linf" else "Jensen-Shannon divergence"
        a.description = (f"{word} {e.distance:.4g} above the threshold {e.threshold:g} and "
                         f"the no-drift 99th percentile {e.null_p99:.4g} at these sample sizes")
        a.short_description = f"high {word} ({mode})"
        r = a.reason.add()
        r.type, r.short_description, r.description = _REASON[e.metric], a.short_description, \
            a.description
    return text_format.MessageToString(doc)


def write_text(output: str, name: str, text: str) -> None:
    storage.write_text(storage.join(output, name), text)


def stage_columns(plan) -> dict[str, list[Column]]:
    """The plan's columns by pipeline stage ("Raw" holds the label too)."""
    return {"Raw": plan.raw, "Transformed": plan.transformed,
            "Prediction": [plan.prediction] if plan.prediction else []}


def all_entries(doc: dict) -> list[drift.FeatureDrift]:
    entries = [drift.FeatureDrift(**f) for f in doc["features"]]
    for key in ("prediction_drift", "label_drift"):
        if doc.get(key):
            entries.append(drift.FeatureDrift(**doc[key]))
    return entries


def drift_document(result: dict, plan, *, baseline, against: str | None) -> dict:
    """drift.json: every comparison, the transform-skew check and the verdict."""
    found = comparisons(result, stage_columns(plan), plan.previous)
    raw = [e for e in found["Raw"] if e.stage == "raw"]
    label = next(e for e in found["Raw"] if e.stage == "label")
    prediction = found.get("Prediction", [None])[0]
    features = raw + found["Transformed"]
    skew = result["transform_skew"]
    label_drift = label.to_dict() if label.n_current else None
    sides = attribution_sides(result, plan.previous)
    attributions = ([] if sides is None else
                    attribution.compare(*sides, plan.attribution_thresholds))
    breach = (any(e.breach for e in features) or bool(prediction and prediction.breach)
              or bool(label_drift and label.breach) or skew["mismatches"] > 0
              or skew["missing"] > 0 or any(e.breach for e in attributions))
    return {"mode": "drift" if against else "skew", "verdict": "breach" if breach else "ok",
            "baseline": baseline.root, "baseline_digest": baseline.digest, "against": against,
            "n_reference": max((e.n_reference for e in raw), default=0),
            "n_current": max((e.n_current for e in raw), default=0),
            "features": [e.to_dict() for e in features], "transform_skew": skew,
            "prediction_drift": prediction.to_dict() if prediction else None,
            "label_drift": label_drift,
            "attribution_drift": [e.to_dict() for e in attributions], "counts": result["counts"]}
