"""Scoring a candidate and the blessed model on the same eval rows, and the decision.

Both models predict every row of the features artifact's eval split (``load_model``'s
``predict``: the label's own units, as the trainers report their metrics); the metrics
are ``mlbatch.metrics.task_metrics`` overall and on each value of the slice column. Each
threshold is checked overall and on every slice with at least ``min_slice_rows`` rows
(and both classes, for classification): the worst slice must pass too. A slice column
that is a vocabulary feature is sliced by its values (``origin_id`` by ``JFK``, ``LGA``,
not by ids), read through the features artifact's tf.Transform vocabulary.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from mlbatch.artifacts.features import FeatureSet, read_vocabulary
from mlbatch.artifacts.models import Model
from mlbatch.labels import inverse_label
from mlbatch.metrics import task_metrics
from pipelines.model_registry.thresholds import Threshold, check


@dataclasses.dataclass(frozen=True)
class EvalRows:
    """The eval split's labels (label units) and the slice column's values, if any."""
    table: pa.Table
    labels: np.ndarray
    slices: np.ndarray | None


def eval_rows(fs: FeatureSet, slice_column: str | None) -> EvalRows:
    table = fs.read_table("eval")
    stored = table.column(fs.label).to_numpy(zero_copy_only=False).astype(np.float64)
    labels = stored if fs.task == "binary_classification" else inverse_label(
        stored, fs.label_transform)
    slices = None
    if slice_column:
        slices = slice_values(fs, slice_column, np.asarray(
            table.column(slice_column).to_numpy(zero_copy_only=False)))
    return EvalRows(table, labels, slices)


def slice_values(fs: FeatureSet, column: str, ids: np.ndarray) -> np.ndarray:
    """The slice column's values as people name them: a vocabulary feature's ids become
    the vocabulary's values (ids past it ``OOV n``); any other column as it is."""
    feature = next((f for f in fs.categorical if f.name == column), None)
    vocab = read_vocabulary(fs, feature) if feature is not None else None
    if not vocab:
        return ids
    def name(i: int) -> str:
        return vocab[i] if 0 <= i < len(vocab) else f"OOV {i - len(vocab)}"
    return np.array([name(int(i)) for i in ids], dtype=object)


def slice_keys(rows: EvalRows, task: str, min_rows: int) -> tuple[list, list[dict]]:
    """(slice values checked, [{slice, rows, reason}] of the slices skipped), sorted."""
    if rows.slices is None:
        return [], []
    keep, skipped = [], []
    for value in sorted(set(rows.slices.tolist()), key=str):
        mask = rows.slices == value
        n = int(mask.sum())
        if n < min_rows:
            skipped.append({"slice": value, "rows": n, "reason": f"fewer than {min_rows} rows"})
        elif task == "binary_classification" and len(set(rows.labels[mask] > 0.5)) < 2:
            skipped.append({"slice": value, "rows": n, "reason": "one class only"})
        else:
            keep.append(value)
    return keep, skipped


def model_metrics(model: Model, rows: EvalRows, keys: list) -> dict:
    """{"overall": metrics, "slices": {str(value): metrics}} of one model's predictions."""
    scores = model.predict(rows.table)
    out = {"overall": task_metrics(model.task, rows.labels, scores), "slices": {}}
    for value in keys:
        mask = rows.slices == value
        out["slices"][str(value)] = task_metrics(model.task, rows.labels[mask], scores[mask])
    return out


def run_checks(thresholds: list[Threshold], candidate: dict, baseline: dict | None,
               keys: list) -> list[dict]:
    """Every check's record: each threshold overall, then on each slice. Change
    thresholds are skipped without a baseline (the first model of a name)."""
    applicable = [t for t in thresholds if t.kind == "value" or baseline is not None]
    out = []
    for where in [None, *keys]:
        cand = candidate["overall"] if where is None else candidate["slices"][str(where)]
        base = None
        if baseline is not None:
            base = baseline["overall"] if where is None else baseline["slices"][str(where)]
        for th in applicable:
            out.append(check(th, cand.get(th.metric), base.get(th.metric) if base else None,
                             where))
    return out
