"""Wires the scoring job: raw rows -> saved transform -> RunInference -> predictions.

read (beam_jobs.tabular.serving) -> TransformFeatures (the saved transform_fn) ->
KeyByExamples ((example_id, label) key, the model's input columns) -> RunInference
(KeyedModelHandler over handlers.ModelArtifactHandler) -> predictions Parquet (a
multiclass model: classes + scores + predicted_class), Vertex JSON lines; dead letters
and per-stage counts (summary.json) beside them.
"""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from beam_jobs.common import deadletter, sinks
from beam_jobs.score.config import ScoreConfig
from beam_jobs.tabular import prepare, serving
from beam_jobs.score.handlers import ModelArtifactHandler
from mlbatch.artifacts import predictions as contract
from mlbatch.artifacts.models import Model
from mlbatch.schema import DatasetSchema

JOB_NAMESPACE = "score"
SUMMARY = "summary.json"


def key_by_examples(t: pa.Table, model: Model) -> tuple[pa.Table, pa.Table]:
    """(the batch's example_id and label, the model's input columns of the batch)."""
    return t.select([prepare.EXAMPLE_ID, serving.LABEL]), t.select(list(model.feature_names))


def prediction_table(keyed, model_digest: str, transform_digest: str,
                     classes: tuple[str, ...] = ()) -> pa.Table:
    """RunInference's (key, PredictionResult) for a batch -> rows of contract.SCHEMA
    (contract.MULTICLASS_SCHEMA for a model with ``classes``)."""
    key, result = keyed
    values = np.asarray(result.inference, dtype=np.float64)
    if len(values) != key.num_rows:
        raise ValueError(f"the model returned {len(values)} predictions for {key.num_rows} rows")
    n = key.num_rows
    if classes:
        return multiclass_table(key, values, classes, model_digest, transform_digest)
    return pa.Table.from_arrays(
        [key.column(prepare.EXAMPLE_ID), pa.array(values), key.column(serving.LABEL),
         pa.repeat(pa.scalar(model_digest), n), pa.repeat(pa.scalar(transform_digest), n)],
        schema=contract.SCHEMA)


def multiclass_table(key: pa.Table, probs: np.ndarray, classes: tuple[str, ...],
                     model_digest: str, transform_digest: str) -> pa.Table:
    """A batch's [n, K] class probabilities -> rows of contract.MULTICLASS_SCHEMA."""
    n, k = key.num_rows, len(classes)
    if probs.shape != (n, k):
        raise ValueError(f"the model returned {probs.shape} scores for {n} rows x {k} classes")
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    names = pa.array(list(classes), pa.string())
    return pa.Table.from_arrays(
        [key.column(prepare.EXAMPLE_ID),
         pa.ListArray.from_arrays(offsets, names.take(pa.array(np.tile(np.arange(k), n)))),
         pa.ListArray.from_arrays(offsets, pa.array(probs.reshape(-1))),
         names.take(pa.array(np.argmax(probs, axis=1))) if n else pa.array([], pa.string()),
         key.column(serving.LABEL),
         pa.repeat(pa.scalar(model_digest), n), pa.repeat(pa.scalar(transform_digest), n)],
        schema=contract.MULTICLASS_SCHEMA)


_NEEDS_ESCAPE = r'[^ -~]|["\\]'  # outside printable ASCII, a quote or a backslash


def vertex_lines(t: pa.Table) -> str:
    """A batch as Vertex AI batch prediction's JSON lines ({"key", "prediction"}).

    Built with Arrow compute kernels (Arrow writes floats in their shortest round-trip
    form); ids holding a character JSON escapes take json.dumps instead."""
    ids = t.column("example_id").combine_chunks()
    preds = t.column("prediction").combine_chunks()
    if not pc.all(pc.is_finite(preds)).as_py() or pc.any(
            pc.match_substring_regex(ids, _NEEDS_ESCAPE)).as_py():
        return "\n".join(json.dumps({"key": k, "prediction": p})
                          for k, p in zip(ids.to_pylist(), preds.to_pylist()))
    lines = pc.binary_join_element_wise('{"key": "', ids, '", "prediction": ',
                                        pc.cast(preds, pa.string()), "}", "")
    return "\n".join(lines.to_pylist())


def vertex_multiclass_lines(t: pa.Table) -> str:
    """A multiclass batch as Vertex AI batch prediction's classification JSON lines:
    {"key", "prediction": {"classes": [...], "scores": [...]}}."""
    return "\n".join(json.dumps({"key": k, "prediction": {"classes": c, "scores": s}})
                     for k, c, s in zip(t.column("example_id").to_pylist(),
                                        t.column("classes").to_pylist(),
                                        t.column("scores").to_pylist()))


def build(p: beam.Pipeline, args: ScoreConfig, schema: DatasetSchema,
          inputs: dict[str, list[str]], features_root: str, model: Model,
          transform_digest: str, columns: dict[str, list[str]] | None = None) -> None:
    """`inputs`: each table's files, `columns`: the declared columns they hold
    (serving.check_serving_inputs; absent ones are read as null)."""
    out = args.output
    read = p | "ReadExamples" >> serving.ReadServingExamples(
        schema, inputs, chunk_rows=args.chunk_rows, job=JOB_NAMESPACE, columns=columns)
    transformed = read[serving.EXAMPLES] | "TransformFeatures" >> beam.ParDo(
        serving.TransformFeaturesFn(features_root, schema, batch_rows=args.chunk_rows,
                                    job=JOB_NAMESPACE))
    scored = (transformed
              | "KeyByExamples" >> beam.Map(key_by_examples, model)
              | "Predict" >> RunInference(KeyedModelHandler(ModelArtifactHandler(model)))
              | "ToPredictions" >> beam.Map(prediction_table, model.digest, transform_digest,
                                            model.classes))
    _ = scored | "WritePredictions" >> sinks.WriteParquet(
        FileSystems.join(out, contract.DIR, "part"), contract.schema_for(model.task),
        codec=args.compression,
        row_group_rows=args.row_group_rows, num_shards=args.num_shards)
    _ = (scored
         | "DropEmpty" >> beam.Filter(lambda t: t.num_rows > 0)
         | "ToVertexLines" >> beam.Map(vertex_multiclass_lines if model.classes
                                       else vertex_lines)
         | "WriteVertex" >> beam.io.WriteToText(
             FileSystems.join(out, contract.VERTEX_DIR, contract.VERTEX_PREFIX),
             shard_name_template="-SSSSS-of-NNNNN", num_shards=args.num_shards))
    dead = read[serving.DEAD_LETTER]
    _ = dead | "WriteDeadLetters" >> deadletter.WriteDeadLetters(
        FileSystems.join(out, deadletter.DEAD_LETTER, "part"), codec=args.compression)
    counts = [read[serving.COUNTS],
              scored | "CountScored" >> beam.Map(lambda t: ("scored", t.num_rows)),
              dead | "CountDeadLetters" >> beam.Map(lambda d: (f"{d['table']}_dead_letter", 1)),
              read[serving.FILES] | "CountRead" >> beam.FlatMap(
                  lambda f: [(f"{f['table']}_read", f["records"]),
                             (f"{f['table']}_lines", f["lines"])])]
    _ = (counts
         | "FlattenCounts" >> beam.Flatten()
         | "SumCounts" >> beam.CombinePerKey(sum)
         | "CountsToDict" >> beam.combiners.ToDict()
         | "WriteCounts" >> beam.Map(_write_counts, FileSystems.join(out, SUMMARY),
                                     files=beam.pvalue.AsList(read[serving.FILES])))


def _write_counts(counts: dict, path: str, files: list) -> None:
    doc = {"counts": {k: int(v) for k, v in sorted(counts.items())},
           "files": sorted([f["table"], f["path"], f["records"]] for f in files)}
    with FileSystems.create(path) as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True).encode("utf-8"))
