"""The ``evaluation`` artifact: out-of-time metrics of stored predictions, from labels
that arrived later. Written by ``python -m beam_jobs.evaluate`` (docs/serving.md)::

    keys/part-*.parquet      the schema's identity columns + example_id of each scored row
    labels/part-*.parquet    identity columns + label of each labelled row that arrived
    dead_letter/             rows of either that could not be read, with their reasons
    artifact.json            inputs: predictions (artifact), labelled raw files
                             ("labels:<table>"); metrics: rows_scored, rows_labels,
                             rows_joined, rows_scored_unlabelled, rows_labels_unscored,
                             auc + logloss (classification) or rmse + mae (regression)
                             on the joined rows, and the model's eval-split figures as
                             eval_split_<metric>; the "evaluation" section: {"period",
                             "identity", "task", "model_digest", "out_of_time"}
"""
from __future__ import annotations

from mlbatch.artifacts.base import Manifest, read_manifest

TYPE = "evaluation"


def load_evaluation(uri: str) -> Manifest:
    """The committed evaluation's manifest (metrics, the "evaluation" section)."""
    return read_manifest(uri, TYPE)
