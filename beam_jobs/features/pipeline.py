"""Wires the feature job: read -> validate -> prepare -> tf.Transform -> Parquet.

Two ways to run it (``--passes``):

* one pipeline (`build`): analyze train and transform train and eval in the same graph.
  The examples wait for the analyzers' result, so a runner must hold them until then:
  Dataflow spills them to its shuffle storage, but Beam's local FnApiRunner keeps every
  PCollection between stages in memory, so there peak memory grows with the input.
* two pipelines over the same input, one after the other: `build_analyze` reads and
  prepares the input, analyzes train and writes the transform_fn, the dead letters, the
  excluded rows and the counts (summary.json without the transformed statistics);
  `build_transform` reads the input again, streams it through the SAVED transform_fn and
  writes train/ and eval/ Parquet and the transformed statistics into summary.json.
  Nothing waits for a whole-input result, so memory stays bounded. Dead letters, excluded
  rows and counts come from the first pass only, so nothing is counted twice.
"""
from __future__ import annotations

import dataclasses

import apache_beam as beam
import pyarrow as pa
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.common import deadletter, sinks
from beam_jobs.features.config import FeatureConfig
from beam_jobs.tabular import examples, prepare, reading
from beam_jobs.tabular.tensors import tensor_adapter_config
from beam_jobs.features import accounting, limits, transforms
from beam_jobs.features.preprocessing import (cross_fingerprint_name, make_preprocessing_fn,
                                              make_reference_preprocessing_fn)
from mlbatch.artifacts import write_json
from mlbatch.schema import DatasetSchema

EXCLUDED_SCHEMA = pa.schema([(prepare.EXAMPLE_ID, pa.string()), ("reason", pa.string())])


def tfxio_arrow_schema(schema: DatasetSchema) -> pa.Schema:
    """Arrow schema of the batches prepare.to_tfxio_batch emits."""
    value_type = {"string": pa.large_binary(), "float64": pa.float32(), "int64": pa.int64()}
    types = schema.prepared_columns()
    fields = [pa.field(n, pa.large_list(value_type[types[n]])) for n in schema.transform_inputs()]
    fields += [pa.field(prepare.EXAMPLE_ID, pa.list_(pa.large_binary())),
               pa.field(schema.label.name, pa.list_(pa.float32())),
               pa.field(prepare.IS_EVAL, pa.list_(pa.bool_()))]
    return pa.schema(fields)


@dataclasses.dataclass
class Prepared:
    """The read-and-prepare half of the graph: train and eval TFXIO batches, excluded
    rows, dead letters, per-file records and (stage, n) count pairs."""
    train: beam.PCollection
    eval: beam.PCollection
    excluded: beam.PCollection
    dead: beam.PCollection
    files: beam.PCollection
    counts: beam.PCollection
    used: beam.PCollection | None = None  # (lookup table, row indices a batch used)
    profile: beam.PCollection | None = None  # prepare.profile of each batch


def read_and_prepare(p: beam.Pipeline, schema: DatasetSchema, inputs: dict[str, list[str]],
                     chunk_rows: int, together: bool = False) -> Prepared:
    """`inputs`: each table's input files (reading.check_inputs), read and prepared by the
    one composite serving uses too (examples.ReadAndPrepare). `together`: train and eval
    examples in one PCollection (`train`; `eval` stays empty), see PrepareExamplesFn."""
    tags = (transforms.EVAL, transforms.EXCLUDED, transforms.LOOKUP_USED, transforms.PROFILE)
    out = p | "ReadAndPrepare" >> examples.ReadAndPrepare(
        schema, inputs, transforms.PrepareExamplesFn(schema, together), tags,
        chunk_rows=chunk_rows, job="features")
    return Prepared(out[examples.PREPARED], out[transforms.EVAL], out[transforms.EXCLUDED],
                    out[examples.DEAD_LETTER], out[examples.FILES], out[examples.COUNTS],
                    out[transforms.LOOKUP_USED], out[transforms.PROFILE])


def _context(schema: DatasetSchema, tft_temp_dir: str) -> tft_beam.Context:
    passthrough = {prepare.EXAMPLE_ID, schema.label.name, prepare.IS_EVAL}
    return tft_beam.Context(temp_dir=tft_temp_dir, passthrough_keys=passthrough)


def _analyze(prep: Prepared, args: FeatureConfig, schema: DatasetSchema):
    """Analyze train only (call inside the tf.Transform context)."""
    adapter = tensor_adapter_config(schema, tfxio_arrow_schema(schema))
    preprocessing_fn = (make_preprocessing_fn if args.analyzers == "fused"
                        else make_reference_preprocessing_fn)(schema)
    return (prep.train, adapter) | "AnalyzeTrain" >> tft_beam.AnalyzeDataset(preprocessing_fn)


def _transform(prep: Prepared, schema: DatasetSchema, transform_fn, together: bool = False):
    """Train and eval in one pass over the same transform_fn (one SavedModel load),
    routed by the split flag afterwards: (train, eval) transformed batches. `together`:
    prep.train holds both already (read_and_prepare)."""
    adapter = tensor_adapter_config(schema, tfxio_arrow_schema(schema))
    examples = prep.train if together else (
        (prep.train, prep.eval) | "AllExamples" >> beam.Flatten())
    transformed, _ = (((examples, adapter), transform_fn)
                      | "Transform" >> tft_beam.TransformDataset(output_record_batches=True))
    split = transformed | "SplitTransformed" >> beam.ParDo(
        transforms.SplitTransformedFn()).with_outputs(transforms.EVAL, main="train")
    return split.train, split[transforms.EVAL]


def _write_transformed(train_t, eval_t, args: FeatureConfig, schema: DatasetSchema):
    """train/ and eval/ Parquet; returns the train feature and cross statistics."""
    out = args.output
    cross_stats = train_t | "TrainCrossStats" >> beam.CombineGlobally(transforms.CrossStatsFn(
        [(c.name, cross_fingerprint_name(c.cross), c.hash_buckets) for c in schema.crosses],
        schema.cross_rare_threshold))
    out_schema = transforms.output_schema(schema)
    stats = None
    for split, pcoll in (("train", train_t), ("eval", eval_t)):
        tables = pcoll | f"Flatten{reading.camel(split)}" >> beam.Map(
            transforms.flatten_transformed, out_schema)
        _ = tables | f"Write{reading.camel(split)}" >> sinks.WriteParquet(
            FileSystems.join(out, split, "part"), out_schema, codec=args.compression,
            row_group_rows=args.row_group_rows, num_shards=args.num_shards)
        if split == "train":
            numeric = [f.name for f in schema.numeric]
            categorical = [n for n in schema.feature_names if n not in numeric]
            stats = tables | "TrainFeatureStats" >> beam.CombineGlobally(
                transforms.FeatureStatsFn(numeric, categorical))
    return stats, cross_stats


def _write_outcomes(p: beam.Pipeline, prep: Prepared, args: FeatureConfig):
    """Dead letters and excluded rows; returns the side inputs of the summary's counts."""
    out = args.output
    dead_letters = prep.dead
    _ = dead_letters | "WriteDeadLetters" >> deadletter.WriteDeadLetters(
        FileSystems.join(out, deadletter.DEAD_LETTER, "part"), codec=args.compression)
    _ = prep.excluded | "WriteExcluded" >> sinks.WriteTables(
        FileSystems.join(out, "excluded", "part"), EXCLUDED_SCHEMA, codec=args.compression)
    counts = [prep.counts]
    counts.append(dead_letters | "CountDeadLetters" >> beam.Map(
        lambda d: (f"{d['table']}_dead_letter", 1)))
    reasons = dead_letters | "CountDeadLetterReasons" >> limits.CountReasons()
    all_files = prep.files
    counts.append(all_files | "CountRead" >> beam.Map(lambda f: (f"{f['table']}_read", f["records"])))
    counts.append(all_files | "CountLines" >> beam.Map(lambda f: (f"{f['table']}_lines", f["lines"])))
    count_dict = (counts | "FlattenCounts" >> beam.Flatten()
                  | "SumCounts" >> beam.CombinePerKey(sum)
                  | "CountsToDict" >> beam.combiners.ToDict())
    used = prep.used | "CountLookupRowsUsed" >> beam.CombineGlobally(transforms.UsedRowsFn())
    profile = prep.profile | "ProfileColumns" >> beam.CombineGlobally(transforms.ProfileFn())
    return {"counts": beam.pvalue.AsSingleton(count_dict), "files": beam.pvalue.AsList(all_files),
            "reasons": beam.pvalue.AsSingleton(reasons), "used": beam.pvalue.AsSingleton(used),
            "profile": beam.pvalue.AsSingleton(profile)}


def _write_summary(p: beam.Pipeline, out: str, assemble, **kwargs) -> None:
    _ = (p | "SummarySeed" >> beam.Create([None])
         | "AssembleSummary" >> beam.Map(assemble, **kwargs)
         | "WriteSummary" >> beam.Map(lambda doc: write_json(
             FileSystems.join(out, "summary.json"), doc)))


def build(p: beam.Pipeline, args: FeatureConfig, schema: DatasetSchema, tft_temp_dir: str,
          inputs: dict[str, list[str]], transform_dir: str | None = None) -> None:
    """The whole job as one pipeline. `transform_dir`: where transform_fn/ goes (default
    --output; a local staging directory when --output is one TensorFlow cannot write)."""
    prep = read_and_prepare(p, schema, inputs, args.chunk_rows)
    with _context(schema, tft_temp_dir):
        transform_fn = _analyze(prep, args, schema)
        train_t, eval_t = _transform(prep, schema, transform_fn)
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(
            transform_dir or args.output)
    stats, crosses = _write_transformed(train_t, eval_t, args, schema)
    sides = _write_outcomes(p, prep, args)
    _write_summary(p, args.output, assemble_summary, schema=schema,
                   stats=beam.pvalue.AsSingleton(stats),
                   crosses=beam.pvalue.AsSingleton(crosses), **sides)


def build_analyze(p: beam.Pipeline, args: FeatureConfig, schema: DatasetSchema,
                  tft_temp_dir: str, inputs: dict[str, list[str]],
                  transform_dir: str | None = None) -> None:
    """Pass 1 of 2: transform_fn/, dead letters, excluded rows, summary.json (counts;
    the transformed statistics come with pass 2)."""
    prep = read_and_prepare(p, schema, inputs, args.chunk_rows)
    with _context(schema, tft_temp_dir):
        _ = _analyze(prep, args, schema) | "WriteTransformFn" >> tft_beam.WriteTransformFn(
            transform_dir or args.output)
    sides = _write_outcomes(p, prep, args)
    _write_summary(p, args.output, assemble_summary, schema=schema, stats=None, crosses=None,
                   **sides)


def build_transform(p: beam.Pipeline, args: FeatureConfig, schema: DatasetSchema,
                    tft_temp_dir: str, inputs: dict[str, list[str]], first_pass: dict,
                    transform_dir: str | None = None) -> None:
    """Pass 2 of 2: the input again through the saved transform_fn -> train/ eval/
    Parquet; summary.json = `first_pass` (pass 1's summary) + the transformed statistics.
    Pass 2's own dead letters, excluded rows and counts are pass 1's again: not kept.
    Every step from reading to Parquet runs in one fused stage: nothing is held."""
    prep = read_and_prepare(p, schema, inputs, args.chunk_rows, together=True)
    with _context(schema, tft_temp_dir):
        transform_fn = p | "ReadTransformFn" >> tft_beam.ReadTransformFn(
            transform_dir or args.output)
        train_t, eval_t = _transform(prep, schema, transform_fn, together=True)
    stats, crosses = _write_transformed(train_t, eval_t, args, schema)
    _write_summary(p, args.output, lambda _, stats, crosses: {
        **first_pass, "train_feature_stats": stats, "crosses": crosses},
        stats=beam.pvalue.AsSingleton(stats), crosses=beam.pvalue.AsSingleton(crosses))


def assemble_summary(_, schema: DatasetSchema, counts: dict, stats: dict | None,
                     crosses: dict | None, files: list, reasons: list = (),
                     used: dict | None = None, profile: dict | None = None) -> dict:
    """Counts per stage, per table, the train feature statistics and the most common
    dead-letter reasons (limits.CountReasons); checks the counts add up.

    "read" counts records (a CSV record may span physical lines: quoted line breaks), each
    of which is either valid or a dead letter; "lines" counts the physical data lines.
    """
    c = lambda k: int(counts.get(k, 0))  # noqa: E731
    main = schema.main
    tables = {}
    for name in schema.tables:
        tables[name] = {
            "read": c(f"{name}_read"), "lines": c(f"{name}_lines"), "valid": c(f"{name}_valid"),
            "dead_letter": c(f"{name}_dead_letter"),
            "files": sorted((f["path"], f["records"]) for f in files if f["table"] == name)}
        if name != main:
            tables[name]["duplicate_keys_dropped"] = c(f"{name}_duplicate_keys_dropped")
    stages = {"read": c(f"{main}_read"), "lines": c(f"{main}_lines"), "valid": c(f"{main}_valid"),
              "dead_letter": c(f"{main}_dead_letter"), "excluded": c("excluded"),
              "train": c("train"), "eval": c("eval")}
    checks = {
        "read == valid + dead_letter": stages["read"] == stages["valid"] + stages["dead_letter"],
        "valid == train + eval + excluded":
            stages["valid"] == stages["train"] + stages["eval"] + stages["excluded"],
    }
    for name, t in tables.items():
        checks[f"{name}: read == valid + dead_letter"] = t["read"] == t["valid"] + t["dead_letter"]
    joins = accounting.join_summary(schema, counts, used or {})
    for name, j in joins.items():
        checks[f"join {name}: matched + unmatched == {main} valid"] = \
            j["matched"] + j["unmatched"] == stages["valid"]
        if "late" in j:  # an as-of join: why its unmatched rows found no lookup row
            checks[f"join {name}: late + too_early + missed == unmatched"] = \
                j["late"] + j["too_early"] + j["missed"] == j["unmatched"]
    return {"dataset": schema.name, "stages": stages, "tables": tables,
            "reconciled": all(checks.values()), "checks": checks, "train_feature_stats": stats,
            "crosses": crosses, "joins": joins,
            "columns": accounting.column_summary(profile or {}),
            "dead_letter_reasons": limits.top_reasons(list(reasons), schema.tables)}
