"""The ``predictions`` artifact: a model applied to raw rows in batch.

Written by ``python -m beam_jobs.score``::

    predictions/part-*.parquet     example_id (string), prediction (float64: probability
                                   for binary classification, the label's own units for
                                   regression), label (float64, null when the raw row has
                                   none), model_digest, transform_digest (strings);
                                   multiclass (``MULTICLASS_SCHEMA``): example_id, classes
                                   (list<string>, the model's class names in order), scores
                                   (list<float64>, their probabilities, same order),
                                   predicted_class (string, the arg-max; the first on ties),
                                   label (float64: the true class's index in classes, null
                                   when the raw row has none), model_digest, transform_digest
    vertex/prediction.results-SSSSS-of-NNNNN   the same, as Vertex AI batch prediction's
                                   JSON lines: {"key": example_id, "prediction": x};
                                   multiclass: {"key": example_id, "prediction":
                                   {"classes": [...], "scores": [...]}}
    dead_letter/                   rows that could not be scored, with their reasons
    summary.json                   counts (read = scored + dead_letter), metrics, timings
    artifact.json                  inputs: features and model (artifacts), raw files
                                   ("raw:<table>"); metrics: rows_read, rows_scored,
                                   rows_dead_letter, rows_labelled, and on labelled rows
                                   auc + logloss (classification), logloss, accuracy,
                                   auc_ovr_macro, auc_ovr_weighted (multiclass) or rmse +
                                   mae (regression); and the "predictions" section:
                                   {"task", "label", "model_type", "model_digest",
                                    "transform_digest", "dir", "vertex_dir", "counts",
                                    "classes" (multiclass)}

``load_predictions`` is the one reader.
"""
from __future__ import annotations

import dataclasses
import os

import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch import storage
from mlbatch.artifacts.base import ArtifactError, Manifest, read_manifest

TYPE = "predictions"
DIR = "predictions"
VERTEX_DIR = "vertex"
VERTEX_PREFIX = "prediction.results"
SCHEMA = pa.schema([
    pa.field("example_id", pa.string(), nullable=False),
    pa.field("prediction", pa.float64(), nullable=False),
    pa.field("label", pa.float64()),
    pa.field("model_digest", pa.string(), nullable=False),
    pa.field("transform_digest", pa.string(), nullable=False)])
# A multiclass model's rows: Vertex AI batch prediction's classification layout (the class
# names in the model's order and their probabilities) plus the arg-max class.
MULTICLASS_SCHEMA = pa.schema([
    pa.field("example_id", pa.string(), nullable=False),
    pa.field("classes", pa.list_(pa.string()), nullable=False),
    pa.field("scores", pa.list_(pa.float64()), nullable=False),
    pa.field("predicted_class", pa.string(), nullable=False),
    pa.field("label", pa.float64()),
    pa.field("model_digest", pa.string(), nullable=False),
    pa.field("transform_digest", pa.string(), nullable=False)])


def schema_for(task: str) -> pa.Schema:
    """The predictions' Parquet schema for a model of ``task``."""
    return MULTICLASS_SCHEMA if task == "multiclass_classification" else SCHEMA


@dataclasses.dataclass(frozen=True)
class Predictions:
    """A committed predictions artifact (the reader's view)."""
    root: str
    manifest: Manifest

    @property
    def body(self) -> dict:
        return self.manifest.body

    @property
    def task(self) -> str:
        return self.body["task"]

    @property
    def num_rows(self) -> int:
        return int(self.manifest.rows[DIR])

    @property
    def metrics(self) -> dict:
        return self.manifest.metrics

    @property
    def model_uri(self) -> str:
        return self.manifest.input("model")["uri"]

    @property
    def model_digest(self) -> str:
        return self.manifest.input("model")["digest"]

    @property
    def features_uri(self) -> str:
        return self.manifest.input("features")["uri"]

    @property
    def features_digest(self) -> str:
        return self.manifest.input("features")["digest"]

    def files(self) -> list[str]:
        """URIs of the predictions' Parquet files, sorted."""
        d = storage.join(self.root, self.body.get("dir", DIR))
        return [storage.join(d, f.relpath) for f in storage.list_files(d)
                if f.relpath.endswith(".parquet") and "/" not in f.relpath]

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        """Every prediction as one Arrow table (``schema_for(task)``'s columns, or
        ``columns``)."""
        tables = []
        for uri in self.files():
            loc = storage.locate(uri)
            tables.append(pq.read_table(loc.path, columns=columns, filesystem=loc.fs))
        if not tables:
            full = schema_for(self.task)
            schema = full if columns is None else pa.schema([full.field(c) for c in columns])
            return schema.empty_table()
        return pa.concat_tables(tables)


def load_predictions(root: str | os.PathLike) -> Predictions:
    """Reads a committed ``predictions`` artifact (local path or ``gs://``); raises
    ArtifactError naming the cause (uncommitted, wrong type, a missing section)."""
    m = read_manifest(root, TYPE)
    p = Predictions(root=m.root, manifest=m)
    try:
        p.task, p.num_rows, p.model_uri, p.features_uri  # noqa: B018 - fields present
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{m.root}: the {TYPE} manifest lacks {e}") from e
    return p
