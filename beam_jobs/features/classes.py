"""The class pass of a ``classes: {top_k: K}`` label: a short pipeline before the feature
pipelines that counts the label's values on the train split, so that the K most frequent
become the classes (``mlbatch.schema.resolve_classes``) before any label is indexed.

It reads the rows as serving does (``beam_jobs.tabular.serving``: the same validation,
joins, derived columns and filters) with the unresolved schema, whose only class is
``other``: every non-null value is a label there, so the split's rows with a label are
the feature job's. Dead letters are left to the feature pipelines, which count them.
The counts stay in the output as ``label_counts.json`` ({value: train rows}).
"""
from __future__ import annotations

import json
import logging

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from beam_jobs.tabular import prepare, serving
from mlbatch import expr
from mlbatch.schema import DatasetSchema

LOGGER = logging.getLogger(__name__)
LABEL_COUNTS = "label_counts.json"


def train_label_counts(t: pa.Table, schema: DatasetSchema) -> list[tuple[str, int]]:
    """(value, rows) of the label on a prepared batch's train rows with a label."""
    keep = pc.and_(pc.invert(pa.array(prepare.split_is_eval(t, schema))),
                   pc.is_valid(t.column(serving.LABEL)))
    values = expr.evaluate(schema.label.expr, t.filter(keep))
    counts = pc.value_counts(pc.drop_null(values))
    return [(str(v), int(n)) for v, n in zip(counts.field("values").to_pylist(),
                                             counts.field("counts").to_pylist())]


def _write(counts: dict, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(dict(sorted(counts.items())), indent=2).encode("utf-8"))


def build(p: beam.Pipeline, schema: DatasetSchema, inputs: dict[str, list[str]], *,
          chunk_rows: int, path: str) -> None:
    """Writes the train split's {label value: rows} to ``path``."""
    read = p | "ReadForClasses" >> serving.ReadServingExamples(
        schema, inputs, chunk_rows=chunk_rows, job="features")
    _ = (read[serving.EXAMPLES]
         | "CountTrainLabels" >> beam.FlatMap(train_label_counts, schema)
         | "SumLabelCounts" >> beam.CombinePerKey(sum)
         | "LabelCountsToDict" >> beam.combiners.ToDict()
         | "WriteLabelCounts" >> beam.Map(_write, path))
