"""Wires the late-label job: the scored raw files and the labelled raw files, each read
as scoring reads them (beam_jobs.tabular.serving) -> keys/ (example_id + the schema's
identity columns of every scored row) and labels/ (identity + label of every labelled
row); dead letters of both beside them. The driver joins them (artifacts.py)."""
from __future__ import annotations

import argparse

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from beam_jobs.common import deadletter, sinks
from beam_jobs.tabular import prepare, records, serving
from mlbatch.schema import DatasetSchema

JOB_NAMESPACE = "evaluate"
KEYS, LABELS = "keys", "labels"


def identity_schema(schema: DatasetSchema, *extra: pa.Field) -> pa.Schema:
    main = schema.main_table
    return pa.schema([pa.field(c, records.ARROW_TYPES[main.column(c).type])
                      for c in schema.identity] + list(extra))


def keys_schema(schema: DatasetSchema) -> pa.Schema:
    return identity_schema(schema, pa.field(prepare.EXAMPLE_ID, pa.string()))


def labels_schema(schema: DatasetSchema) -> pa.Schema:
    return identity_schema(schema, pa.field(serving.LABEL, pa.float64()))


def build(p: beam.Pipeline, args: argparse.Namespace, schema: DatasetSchema,
          scored: dict[str, list[str]], labelled: dict[str, list[str]],
          labelled_columns: dict[str, list[str]]) -> None:
    """`scored`: the raw files the predictions were made from; `labelled`: the same
    period's raw data with its labels (their files and columns)."""
    out = args.output
    reads = {KEYS: p | "ReadScored" >> serving.ReadServingExamples(
                 schema, scored, chunk_rows=args.chunk_rows, job=JOB_NAMESPACE),
             LABELS: p | "ReadLabelled" >> serving.ReadServingExamples(
                 schema, labelled, chunk_rows=args.chunk_rows, job=JOB_NAMESPACE,
                 columns=labelled_columns)}
    for name, want in ((KEYS, keys_schema(schema)), (LABELS, labels_schema(schema))):
        _ = (reads[name][serving.EXAMPLES]
             | f"Select{name.capitalize()}" >> beam.Map(
                 lambda t, s=want: t.select(s.names).cast(s))
             | f"Write{name.capitalize()}" >> sinks.WriteParquet(
                 FileSystems.join(out, name, "part"), want, num_shards=1))
    _ = ([r[serving.DEAD_LETTER] for r in reads.values()]
         | "FlattenDeadLetters" >> beam.Flatten()
         | "WriteDeadLetters" >> deadletter.WriteDeadLetters(
             FileSystems.join(out, deadletter.DEAD_LETTER, "part")))
