"""After the late-label pipeline: the stored predictions joined to the labels that
arrived, by the schema's identity columns; the out-of-time metrics; the commit."""
from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_jobs.common import deadletter
from beam_jobs.common.readback import parquet_parts, read_parts
from beam_jobs.tabular import prepare, serving
from beam_jobs.evaluate.pipeline import KEYS, LABELS
from mlbatch import metrics
from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.predictions import Predictions
from mlbatch.errors import UsageError
from mlbatch.schema import DatasetSchema

LOGGER = logging.getLogger(__name__)
MULTICLASS = "multiclass_classification"
ROW = "__prediction_row"


class LateLabelError(ValueError, UsageError):
    """The labels cannot be joined to the predictions (named in the message)."""


def _duplicate_keys(labels: pa.Table, identity: list[str]) -> tuple[int, dict | None]:
    """(identity values named by more than one labelled row, the first such key)."""
    counts = labels.group_by(identity).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts.column("count_all"), 1))
    return dupes.num_rows, (dupes.slice(0, 1).to_pylist()[0] if dupes.num_rows else None)


def prediction_column(predictions: Predictions) -> str:
    """``scores`` (a multiclass model's class probabilities, in ``classes`` order) or
    ``prediction``."""
    return "scores" if predictions.task == MULTICLASS else "prediction"


def joined(predictions: Predictions, keys: pa.Table, labels: pa.Table,
           identity: list[str]) -> pa.Table:
    """identity + prediction (or scores) + label of each scored row whose label arrived. A key
    named twice by the labels cannot say which label is the row's: LateLabelError."""
    n, first = _duplicate_keys(labels, identity)
    if n:
        raise LateLabelError(f"{n} identity value(s) ({', '.join(identity)}) name more than "
                             f"one labelled row, e.g. {first}: the schema's identity does "
                             f"not identify a row")
    column = prediction_column(predictions)
    preds = predictions.read_table().select([prepare.EXAMPLE_ID, column])
    # Arrow joins no list column (scores): the join carries the row, take() the values
    index = pa.table({prepare.EXAMPLE_ID: preds.column(prepare.EXAMPLE_ID),
                      ROW: pa.array(np.arange(preds.num_rows, dtype=np.int64))})
    keyed = index.join(keys, prepare.EXAMPLE_ID, join_type="inner").join(
        labels, identity, join_type="inner")
    return keyed.append_column(column, preds.column(column).take(keyed.column(ROW))
                               ).drop_columns([ROW])


def read_outputs(root: str) -> tuple[pa.Table, pa.Table]:
    """(keys/, labels/ with a label), read back from what the pipeline wrote."""
    keys = read_parts(parquet_parts(root, KEYS), None)
    labels = read_parts(parquet_parts(root, LABELS), None)
    return keys, labels.filter(pc.is_valid(labels.column(serving.LABEL)))


def out_of_time(predictions: Predictions, rows: pa.Table) -> dict:
    """The metrics of the joined rows: mlbatch.metrics.labelled_quality, and for a
    multiclass model the confusion matrix over its classes (as the trainers record it)."""
    labels = rows.column(serving.LABEL).to_numpy()
    column = prediction_column(predictions)
    if column == "prediction":
        return metrics.labelled_quality(predictions.task, labels,
                                        rows.column(column).to_numpy())
    classes = predictions.body["classes"]
    scores = np.array(rows.column(column).to_pylist(), dtype=np.float64).reshape(
        rows.num_rows, len(classes))
    out = metrics.labelled_quality(predictions.task, labels, scores)
    if rows.num_rows:
        out["confusion_matrix"] = metrics.confusion_matrix(labels, scores, classes)
    return out


def beside(m: dict, eval_split: dict) -> dict:
    """``eval_split_<name>``: the model's eval-split figure of each metric the period has
    (recorded as ``<name>`` by XGBoost, ``eval_<name>`` by JAX)."""
    out = {}
    for k in ("auc", "logloss", "rmse", "mae", "accuracy", "auc_ovr_macro",
              "auc_ovr_weighted", "confusion_matrix"):
        value = eval_split.get(k, eval_split.get(f"eval_{k}"))
        if k in m and value is not None:
            out[f"eval_split_{k}"] = value
    return out


def evaluate(writer: ArtifactWriter, schema: DatasetSchema, predictions: Predictions,
             eval_split: dict, period: str | None, labelled: dict[str, list[str]]) -> dict:
    """Joins, computes the out-of-time metrics, commits; returns the metrics."""
    identity = list(schema.identity)
    keys, labels = read_outputs(writer.root)
    rows = joined(predictions, keys, labels, identity)
    task = predictions.manifest.body["task"]
    m = {"rows_scored": predictions.num_rows, "rows_labels": labels.num_rows,
         "rows_joined": rows.num_rows,
         "rows_scored_unlabelled": predictions.num_rows - rows.num_rows,
         "rows_labels_unscored": labels.num_rows - rows.num_rows}
    m.update(out_of_time(predictions, rows))
    m.update(beside(m, eval_split))
    for table, paths in labelled.items():
        for path in paths:
            writer.input_file(f"labels:{table}", path)
    writer.metrics.update(m)
    writer.commit(rows={KEYS: keys.num_rows, LABELS: labels.num_rows},
                  body={"period": period, "identity": identity, "task": task,
                        "model_digest": predictions.model_digest, "out_of_time": True,
                        "dead_letter_dir": deadletter.DEAD_LETTER})
    return m
