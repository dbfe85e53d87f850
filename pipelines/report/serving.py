"""The Serving section: scoring counts, the prediction distribution, drift and skew.

Reads ``predictions`` artifacts through ``mlbatch.artifacts.predictions.load_predictions``
and ``monitor`` artifacts through ``mlbatch.artifacts.monitor.load_monitor`` (formats in
docs/report.md); a run without them, or an mlbatch without those readers, gets "not in
this run".
"""
from __future__ import annotations

import importlib
import logging

import numpy as np

from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.features import load_feature_set, read_vocabulary
from mlbatch import metrics
from pipelines.report import figures
from pipelines.report.models import split_labels
from pipelines.report.blocks import Figure, Section, Text, fmt, short_digest, table
from pipelines.report.run import Run, Step

LOGGER = logging.getLogger(__name__)
COUNTS = ("rows_read", "rows_scored", "rows_dead_letter")
QUALITY = ("auc", "logloss", "rmse", "mae")
MULTICLASS_QUALITY = ("logloss", "accuracy", "auc_ovr_macro", "auc_ovr_weighted")
MAX_DRIFT_PANELS = 16
TOP_VALUES = 12


def _reader(module: str, name: str):
    """A type's reader, or None when this mlbatch has none."""
    try:
        return getattr(importlib.import_module(f"mlbatch.artifacts.{module}"), name)
    except (ImportError, AttributeError):
        return None


def load_monitors(run: Run) -> list[tuple[Step, object | None, str | None]]:
    """(step, MonitorResult | None, problem) for every monitor step."""
    load = _reader("monitor", "load_monitor")
    out = []
    for step in run.of_type("monitor"):
        if load is None:
            out.append((step, None, "this mlbatch has no monitor reader"))
            continue
        try:
            out.append((step, load(step.uri), None))
        except ArtifactError as e:
            out.append((step, None, str(e)))
    return out


def breaches(run: Run) -> list[str]:
    """One line per monitor step whose verdict is a breach (for the top of the report)."""
    lines = []
    for step, mon, _ in load_monitors(run):
        drift = mon.drift if mon is not None else {}
        if drift.get("verdict") == "breach":
            names = [f["name"] for f in drift.get("features", []) if f.get("breach")]
            for extra in ("prediction_drift", "label_drift"):
                if (drift.get(extra) or {}).get("breach"):
                    names.append(extra.replace("_", " "))
            lines.append(f"Drift threshold breached in {step.name} ({drift.get('mode')} "
                         f"check): {', '.join(names) or 'see the drift table'}")
    return lines


def quality_names(task: str) -> tuple[str, ...]:
    return MULTICLASS_QUALITY if task == "multiclass_classification" else QUALITY


def _constant_quality(task: str, labels: np.ndarray, train: np.ndarray) -> tuple[str, dict]:
    """What a constant prediction from the train labels scores on ``labels``."""
    if task == "multiclass_classification":
        k = int(max(train.max(initial=0), labels.max(initial=0))) + 1
        shares = np.bincount(train.astype(int), minlength=k) / max(train.size, 1)
        major = int(np.argmax(shares))
        return "constant: train class shares", {
            "logloss": metrics.multi_logloss(labels, np.tile(shares, (labels.size, 1))),
            "accuracy": float(np.mean(labels.astype(int) == major)),
            "auc_ovr_macro": 0.5, "auc_ovr_weighted": 0.5}
    mean = float(np.mean(train))
    const = np.full(labels.shape, mean)
    if task == "binary_classification":
        return f"constant: train base rate {mean:.4g}", {
            "auc": 0.5, "logloss": metrics.logloss(labels, const)}
    return f"constant: train mean {mean:.4g}", {"rmse": metrics.rmse(labels, const),
                                                "mae": metrics.mae(labels, const)}


def scoring_baseline(run: Run, pred) -> list | None:
    """The constant prediction's row on the scored rows that carry a label: the train base
    rate (AUC 0.5, its logloss), the train class shares (multiclass) or the train mean
    (its RMSE, MAE) of the model's features; None without labelled rows or readable
    features."""
    labels = pred.read_table(["label"])["label"].drop_null()
    labels = labels.to_numpy(zero_copy_only=False).astype(float)
    if not labels.size:
        return None
    step = run.by_digest().get(pred.features_digest)
    try:
        fs = load_feature_set(step.uri if step else pred.features_uri, check_columns=False)
        train = split_labels(fs, "train")
    except ArtifactError as e:
        LOGGER.warning("scoring baseline: %s", e)
        return None
    name, quality = _constant_quality(pred.task, labels, train)
    return ["baseline", name, None, None, None, None,
            *[quality.get(k) for k in quality_names(pred.task)]]


def _distribution(step: Step, pred) -> list:
    """The predictions' distribution: a histogram, or per predicted class its rows."""
    if pred.task == "multiclass_classification":
        t = pred.read_table(["predicted_class"])
        counts = t.group_by("predicted_class").aggregate([("predicted_class", "count")])
        rows = sorted(([r["predicted_class"], r["predicted_class_count"],
                        r["predicted_class_count"] / max(t.num_rows, 1)]
                       for r in counts.to_pylist()), key=lambda r: (-r[1], r[0]))
        return [table(["predicted class", "rows", "share"], rows,
                      f"{step.name}: predicted classes (arg-max) of {t.num_rows:,} rows")]
    values = pred.read_table()["prediction"].to_numpy(zero_copy_only=False).astype(float)
    if not values.size:
        return []
    return [Figure(f"{step.name}-distribution", figures.histogram(
        values, title=f"{step.name}: predictions", xlabel="prediction"),
        "prediction distribution", f"{step.name}: distribution of {values.size:,} "
        f"predictions (mean {np.mean(values):.4g})")]


def _prediction_blocks(run: Run, step: Step, pred) -> list:
    m = pred.manifest
    model = next((e for e in m.inputs if e.get("role") == "model"), {})
    model_step = run.by_digest().get(model.get("digest"))
    names = quality_names(pred.task)
    rows = [[step.name, model_step.name if model_step else model.get("uri"),
             short_digest(model.get("digest")), *[m.metrics.get(k) for k in COUNTS],
             *[m.metrics.get(k) for k in names]]]
    base = scoring_baseline(run, pred)
    blocks = [table(["step", "model", "model digest", "rows read", "rows scored",
                     "dead letters", *names], rows + ([base] if base else []),
                    "Batch scoring (read = scored + dead letters; quality where the raw rows "
                    "carry labels, beside a constant prediction's on the same rows)")]
    return blocks + _distribution(step, pred)


def _by_severity(entry: dict) -> tuple:
    """Sort key: breaches first, then the largest distance (as a share of its threshold
    where there is one), then name."""
    d, t = entry.get("distance"), entry.get("threshold")
    d = d if isinstance(d, (int, float)) else -1.0
    ratio = d / t if isinstance(t, (int, float)) and t > 0 else d
    return (not entry.get("breach"), -ratio, -d, str(entry.get("name")))


def drift_entries(drift: dict) -> list[dict]:
    """Every compared feature (and prediction and label drift), breaches first, then by
    distance."""
    entries = list(drift.get("features", []))
    for extra in ("prediction_drift", "label_drift"):
        if drift.get(extra):
            entries.append({**drift[extra], "name": drift[extra].get("name", extra)})
    return sorted(entries, key=_by_severity)


def drift_rows(drift: dict) -> list[list]:
    return [[f["name"], f.get("stage"), f.get("kind"), f.get("metric"), f.get("distance"),
             f.get("threshold"), f.get("null_p99"), f.get("n_reference"), f.get("n_current"),
             "BREACH" if f.get("breach") else "ok"] for f in drift_entries(drift)]


def _panel_edges(h: dict) -> list[float] | None:
    """Bin edges of a histograms.json entry. Numeric counts may carry one bucket below and
    one above the training range ([below, buckets..., above]: docs/monitoring.md); those
    two are drawn as one bucket width outside the range on either side."""
    if "edges" not in h:
        return None
    edges = [float(e) for e in h["edges"]]
    if len(h["reference"]) == len(edges) + 1 and len(edges) >= 2:
        width = (edges[-1] - edges[0]) / (len(edges) - 1) or 1.0
        edges = [edges[0] - width, *edges, edges[-1] + width]
    return edges


def _hist_key(entry: dict) -> str:
    return f"{entry.get('stage')}/{entry.get('name')}"


def panel_order(drift: dict, histograms: dict) -> list[str]:
    """histograms.json keys in the drift table's order (breaches first, then distance),
    then any others; every breached feature is kept, the rest up to MAX_DRIFT_PANELS."""
    entries = drift_entries(drift)
    ranked = [_hist_key(e) for e in entries if _hist_key(e) in histograms]
    ranked += [k for k in histograms if k not in ranked]
    breached = {_hist_key(e) for e in entries if e.get("breach")}
    keep = max(MAX_DRIFT_PANELS, len(breached & set(ranked)))
    return ranked[:keep]


def short_label(label: str, n: int = 12) -> str:
    return label if len(label) <= n else label[:n - 1] + "…"


def top_values(h: dict, n: int = TOP_VALUES,
               ordered: bool = False) -> tuple[list[str], list, list]:
    """A categorical histogram's ``n`` most common values over both sides (labels,
    reference counts, current counts), most common first (``ordered``: in the values'
    numeric order); the rest as one "other"."""
    ref, cur = np.asarray(h["reference"], float), np.asarray(h["current"], float)
    share = (ref / ref.sum() if ref.sum() else ref) + (cur / cur.sum() if cur.sum() else cur)
    order = np.argsort(-share, kind="stable")
    top, rest = order[:n], order[n:]
    if ordered:
        top = sorted(top, key=lambda i: float(h["values"][i]))
    labels = [short_label(str(h["values"][i])) for i in top]
    r, c = ref[top].tolist(), cur[top].tolist()
    if rest.size:
        labels.append(f"other ({rest.size})")
        r.append(float(ref[rest].sum()))
        c.append(float(cur[rest].sum()))
    return labels, r, c


def baseline_features(run: Run, drift: dict):
    """The monitor's baseline feature artifact (the run's step with its digest, else its
    URI); None when it cannot be read (categorical ids then stay ids)."""
    step = run.by_digest().get(drift.get("baseline_digest"))
    uri = step.uri if step else drift.get("baseline")
    if not uri:
        return None
    try:
        return load_feature_set(uri, check_columns=False)
    except ArtifactError as e:
        LOGGER.warning("baseline features %s: %s (categorical ids unlabelled)", uri, e)
        return None


def vocabularies(fs) -> dict[str, list[str]]:
    """"transformed/<feature>" -> its vocabulary, for every vocabulary feature of ``fs``."""
    out = {}
    for f in fs.categorical if fs is not None else []:
        vocab = read_vocabulary(fs, f)
        if vocab:
            out[f"transformed/{f.name}"] = vocab
    return out


def ordered_keys(fs) -> set[str]:
    """histograms.json keys whose categories are ordered (bucket ids): drawn in id order."""
    return {f"transformed/{f.name}" for f in (fs.categorical if fs is not None else [])
            if f.transform == "bucketize"}


def _vocab_label(value: str, vocab: list[str]) -> str:
    try:
        i = int(float(value))
    except ValueError:
        return value
    return vocab[i] if 0 <= i < len(vocab) else f"OOV {i - len(vocab)}"


def _drift_panels(drift: dict, histograms: dict, fs=None) -> list[dict]:
    breached = {_hist_key(e) for e in drift_entries(drift) if e.get("breach")}
    vocabs, ordered = vocabularies(fs), ordered_keys(fs)
    panels = []
    for key in panel_order(drift, histograms):
        h = histograms[key]
        panel = {"title": ("BREACH " if key in breached else "") + key,
                 "alert": key in breached, "edges": _panel_edges(h), "labels": None,
                 "reference": h["reference"], "current": h["current"]}
        if "values" in h:
            labels, panel["reference"], panel["current"] = top_values(h, ordered=key in ordered)
            vocab = vocabs.get(key)
            panel["labels"] = [_vocab_label(v, vocab) for v in labels] if vocab else labels
        panels.append(panel)
    return panels


def skew_blocks(skew: dict | None) -> list:
    """The transform-skew result in a sentence; the features that differ in a table."""
    if not skew:
        return []
    per = [f for f in skew.get("features") or [] if isinstance(f, dict)]
    bad = [f for f in per if f.get("mismatches")]
    bad_rows = skew.get("mismatches") or 0
    text = (f"Transform skew: {fmt(bad_rows)} of {fmt(skew.get('sampled'))} sampled rows "
            f"differ from what the feature job wrote, {fmt(skew.get('missing') or 0)} missing"
            + (f"; {len(per)} features compared, {len(bad)} differ." if per else "."))
    blocks = [Text(text, "alert" if bad_rows or skew.get("missing") else "ok")]
    if bad:
        blocks.append(table(["feature", "mismatching rows", "largest absolute difference"],
                            [[f.get("name"), f.get("mismatches"), f.get("max_abs_diff")]
                             for f in sorted(bad, key=lambda f: -f["mismatches"])],
                            "Features whose transformed values differ"))
    return blocks


def _monitor_blocks(run: Run, step: Step, mon) -> list:
    drift = mon.drift
    verdict = drift.get("verdict", "?")
    blocks = [Text(f"{step.name}: {drift.get('mode')} check against "
                   f"{drift.get('against') or drift.get('baseline')}: verdict {verdict} "
                   f"({fmt(drift.get('n_reference'))} reference rows, {fmt(drift.get('n_current'))} "
                   "current rows).", "alert" if verdict == "breach" else "ok"),
              table(["feature", "stage", "kind", "metric", "distance", "threshold",
                     "null p99", "n reference", "n current", "verdict"], drift_rows(drift),
                    f"Drift and skew per feature ({step.name})")]
    blocks += skew_blocks(drift.get("transform_skew"))
    panels = _drift_panels(drift, mon.histograms or {}, baseline_features(run, drift))
    if panels:
        blocks.append(Figure(f"{step.name}-histograms", figures.hist_grid(
            panels, ("reference", "current")), "reference vs current histograms",
            f"{step.name}: reference vs current, share per bin or value, in the drift "
            "table's order (breaches first, titled in red); numeric panels' outer bins "
            "count the values below and above the training range"))
    return blocks


def serving_section(run: Run) -> Section:
    blocks, shown = [], []
    preds = run.of_type("predictions")
    load = _reader("predictions", "load_predictions") if preds else None
    for step in preds:
        if load is None:
            blocks.append(Text(f"{step.name}: this mlbatch has no predictions reader.", "note"))
            continue
        try:
            blocks += _prediction_blocks(run, step, load(step.uri))
            shown.append(step.name)
        except ArtifactError as e:
            blocks.append(Text(f"{step.name}: {e}", "alert"))
    for step, mon, problem in load_monitors(run):
        if mon is None:
            blocks.append(Text(f"{step.name}: {problem}", "alert"))
            continue
        blocks += _monitor_blocks(run, step, mon)
        shown.append(step.name)
    if not blocks:
        blocks = [Text("Not in this run: no scoring or monitoring step.", "note")]
    return Section("serving", "Serving", tuple(blocks), present=bool(shown), shown=tuple(shown))
