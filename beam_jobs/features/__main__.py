"""Feature job: raw tables -> validated, joined, engineered features and crosses.

python -m beam_jobs.features --schema schemas/flights.yaml --input data/flights \
    --output out/features [Beam pipeline flags, e.g. --runner DataflowRunner ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import tempfile

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions,
                                                  StandardOptions, TestOptions)

from beam_jobs.common.config import frozen, recorded
from beam_jobs.common.inputs import check_pins, pin_files
from beam_jobs.common.options import exit_now, parse_job_args, refuse_local_paths
from beam_jobs.common.options import pipeline_options, quiet_logging, run_pipeline
from beam_jobs.features.config import FeatureConfig
from beam_jobs.tabular import reading
from beam_jobs.tabular.periods import periods_section
from mlbatch.periods import select as select_periods
from mlbatch.artifacts import ArtifactWriter, read_json
from mlbatch.schema import load_schema
from mlbatch.storage import is_remote
from mlbatch import errors, logs
from mlbatch.errors import JobError, UsageError

# pipeline and artifacts import TensorFlow: only once the flags and schema are known good,
# so that configuration errors come back in a second.
JOB = "beam_jobs.features"
LOGGER = logging.getLogger("beam_jobs.features")
CODECS = ("snappy", "gzip", "zstd", "brotli", "lz4", "none")
# Runners that run the pipeline in (or beside) this process and keep PCollections in memory.
LOCAL_RUNNERS = ("fnapirunner", "directrunner", "direct", "bundlebaseddirectrunner",
                 "swappingrunner")


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1], got {text}")
    return value


def parse_args(argv: list[str]) -> tuple[FeatureConfig, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", required=True, help="dataset schema file (YAML)")
    parser.add_argument("--input", required=True,
                        help="directory or gs:// prefix holding the tables' files (each "
                             "table's schema `path` under it), a glob or a single file")
    parser.add_argument("--output", required=True, help="output directory (local or gs://)")
    parser.add_argument("--periods", default=None, metavar="FIRST..LAST",
                        help="read only these periods of --input's Hive folders "
                             "(period=2013-01/ ...; a range or one period; files beside the "
                             "folders are read too); other periods' rows are counted as "
                             "excluded (docs/periods.md)")
    parser.add_argument("--chunk-rows", type=int, default=50_000,
                        help="raw records parsed and validated per batch")
    parser.add_argument("--compression", choices=CODECS, default="snappy",
                        help="Parquet compression codec")
    parser.add_argument("--row-group-rows", type=int, default=100_000,
                        help="rows per Parquet row group")
    parser.add_argument("--num-shards", type=int, default=0,
                        help="Parquet files per split (0: the runner decides)")
    parser.add_argument("--analyzers", choices=("fused", "per_feature"), default="fused",
                        help="fused: all full-pass statistics in one Beam combine (fast); "
                             "per_feature: one standard tf.Transform analyzer per feature "
                             "(tft.scale_to_z_score, tft.bucketize, ...); same features")
    parser.add_argument("--passes", choices=("auto", "1", "2"), default="auto",
                        help="1: one pipeline (the examples wait in the runner for the "
                             "analyzers); 2: analyze, then read the input again and stream it "
                             "through the saved transform_fn (memory bounded on a local "
                             "runner); auto (default): 2 on a local runner, 1 otherwise")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run in --output")
    parser.add_argument("--max-dead-letter-share", type=_share, default=None,
                        help="fail (output uncommitted) when more than this share of a "
                             "table's records are dead letters (default: the schema's "
                             "limits.max_dead_letter_share, itself 0.01 by default)")
    parser.add_argument("--verbose", action="store_true",
                        help="also Beam's INFO chatter and TensorFlow's native log lines")
    parser.add_argument("--log-level", default="INFO")
    known, beam_args = parse_job_args(parser, argv, at_least_one=("chunk_rows", "row_group_rows"),
                                      at_least_zero=("num_shards",))
    return frozen(FeatureConfig, known), beam_args




class FeatureJobError(RuntimeError, JobError):
    """The run finished but its output cannot be trusted (left uncommitted, reason named)."""


class UnusableInputError(FeatureJobError, UsageError):
    """The input gives no usable features: no train or eval rows, or a derived column or
    feature source that is all null or constant (output left uncommitted; exit 2)."""


def runs_locally(options: PipelineOptions) -> bool:
    """Whether the runner is one of Beam's in-process local runners."""
    runner = options.view_as(StandardOptions).runner or ""
    return runner.rsplit(".", 1)[-1].lower() in LOCAL_RUNNERS


def _two_passes(args: FeatureConfig, options: PipelineOptions) -> bool:
    return args.passes == "2" or (args.passes == "auto" and runs_locally(options))


def _tft_dirs(args: FeatureConfig, options: PipelineOptions,
              dry_run: bool) -> tuple[str, str | None, str | None]:
    """(tf.Transform temp dir, transform_dir, local scratch dir to remove afterwards).

    tf.Transform writes and reads through TensorFlow's own file systems, whose GCS client
    has a fixed endpoint (it cannot reach a storage emulator). So on a local runner its
    files stay on local disk whenever --output or --temp_location is remote: the temp
    dir there, and transform_fn/ (transform_dir) copied up before the commit. On
    Dataflow both live under gs:// (transform_dir None: --output itself)."""
    temp_root = options.view_as(GoogleCloudOptions).temp_location or args.output
    if dry_run:  # tf.Transform creates its temp dir while the graph is built: keep it local
        return tempfile.mkdtemp(prefix="tft_dry_run_"), None, None
    if not runs_locally(options) or not (is_remote(temp_root) or is_remote(args.output)):
        return FileSystems.join(temp_root, "tft_tmp"), None, None
    scratch = tempfile.mkdtemp(prefix="features_tft_")
    transform_dir = os.path.join(scratch, "out") if is_remote(args.output) else None
    return os.path.join(scratch, "tft_tmp"), transform_dir, scratch


def _run_checked(p: beam.Pipeline, options, pins: dict, what: str) -> None:
    """run_pipeline; when it fails, an input that changed meanwhile is named first (a
    file deleted under a running pass fails it with the runner's own error)."""
    try:
        run_pipeline(p, options)
    except Exception:
        check_pins(pins, f"during {what}")
        raise


def _resolve_classes(args, options, schema, files, pins):
    """A ``classes: {top_k: K}`` label: the class pass (beam_jobs.features.classes), then
    the schema with the K most frequent train values + other as its classes."""
    from beam_jobs.features import classes
    from mlbatch.schema import resolve_classes

    path = FileSystems.join(args.output, classes.LABEL_COUNTS)
    p = beam.Pipeline(options=options)
    classes.build(p, schema, files, chunk_rows=args.chunk_rows, path=path)
    _run_checked(p, options, pins, "the class pass")
    schema = resolve_classes(schema, read_json(path))
    LOGGER.info("label %s: classes %s (top %d of the train split + %s)", schema.label.name,
                list(schema.label.classes), schema.label.top_k, schema.label.other)
    return schema


def _run_pipelines(args, options, schema, files, tft_temp, transform_dir, pins):
    """Runs the feature pipelines; returns the schema they ran with (a top_k label's
    classes resolved)."""
    from beam_jobs.features import pipeline

    check_pins(pins, "before reading")
    if schema.label.top_k and not options.view_as(TestOptions).dry_run:
        schema = _resolve_classes(args, options, schema, files, pins)
    if not _two_passes(args, options):
        p = beam.Pipeline(options=options)
        pipeline.build(p, args, schema, tft_temp, files, transform_dir)
        _run_checked(p, options, pins, "the pipeline")
        return schema
    p = beam.Pipeline(options=options)
    pipeline.build_analyze(p, args, schema, tft_temp, files, transform_dir)
    _run_checked(p, options, pins, "pass 1")
    LOGGER.info("pass 1 of 2 (analyze) done; pass 2: transform")
    first = read_json(FileSystems.join(args.output, "summary.json"))
    check_pins(pins, "between pass 1 and pass 2")
    p = beam.Pipeline(options=options)
    pipeline.build_transform(p, args, schema, tft_temp, files, first, transform_dir)
    _run_checked(p, options, pins, "pass 2")
    return schema


def run(argv: list[str] | None = None, save_main_session: bool = True) -> dict | None:
    """The job: returns the summary of the committed output (None on a dry run).

    Raises a UsageError (mlbatch.errors) for what the user must fix before anything runs, and
    FeatureJobError when the output is left uncommitted (counts that do not reconcile,
    too many dead letters); the reason is recorded in the output's _PENDING.json too.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args, beam_args = parse_args(argv)
    quiet_logging(args.verbose)
    schema = load_schema(args.schema)
    refuse_local_paths(beam_args, input=args.input, output=args.output)
    options = pipeline_options(beam_args, job_name=f"features-{schema.name}",
                               save_main_session=save_main_session, job_flags=args.job_flags)
    dry_run = options.view_as(TestOptions).dry_run
    if dry_run:
        args = dataclasses.replace(args, passes="1")  # a dry run describes the one graph
    part = schema.partitions
    declared = args.periods and select_periods(args.periods, part.key, part.granularity)
    files = reading.check_inputs(args.input, list(schema.tables.values()), periods=declared)
    read_periods = declared and periods_section(
        args.input, schema.main_table, files[schema.main], "--periods", args.periods, declared)
    # pinned until the commit: a file rewritten between passes would mix two versions
    pins = {} if dry_run else pin_files([p for paths in files.values() for p in paths])
    writer = ArtifactWriter(args.output, "features", job=JOB, config={
        **recorded(args), "pipeline_args": beam_args})
    if read_periods:
        writer.metrics.update(periods=read_periods)
    if not dry_run:
        writer.claim(overwrite=args.overwrite)
    tft_temp, transform_dir, scratch = _tft_dirs(args, options, dry_run)
    from beam_jobs.features import artifacts

    try:
        with writer:  # an exception marks a claimed output failed
            schema = _run_pipelines(args, options, schema, files, tft_temp, transform_dir,
                                    pins)
            if dry_run:
                return None
            if FileSystems.exists(tft_temp):
                FileSystems.delete([tft_temp])
            summary = artifacts.finalize(
                writer, schema, args.analyzers, args.max_dead_letter_share,
                transform_dir=transform_dir,
                before_commit=lambda: check_pins(pins, "before the commit"))
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    s = summary["stages"]
    LOGGER.info("read %d, dead letter %d, excluded %d, train %d, eval %d -> %s", s["read"],
                s["dead_letter"], s["excluded"], s["train"], s["eval"], args.output)
    if summary["failure"]:
        error = UnusableInputError if summary["failure"] == summary.get("unusable") \
            else FeatureJobError
        raise error(f"output left uncommitted: {summary['failure']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 when the output is committed, 2 (naming the problem) for usage,
    schema, option, input and output errors and input without usable features (left
    uncommitted), 1 when the output is left uncommitted for another reason."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.setup(parse_args(argv)[0].log_level)
    try:
        run(argv)
    except errors.CAUGHT as e:  # UnusableInputError is a UsageError too: exit 2
        return errors.exit_code(None, e)
    return 0


if __name__ == "__main__":
    exit_now(main())
