"""Scoring job: raw rows -> the saved transform -> a trained model -> predictions.

python -m beam_jobs.score --features out/features --model out/xgboost \
    --input data/flights --output out/predictions [Beam pipeline flags, e.g.
    --runner DataflowRunner ...]

Reads the raw tables with the schema the feature artifact was built with (same
validation, joins, derived columns and dead letters as the feature job), applies the
artifact's saved transform_fn and runs the model (an ``xgboost_model`` or ``jax_model``
artifact trained on those features) with Beam's RunInference. docs/scoring.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import TestOptions

from beam_jobs.common.config import frozen, recorded
from beam_jobs.common.options import exit_now, parse_job_args
from beam_jobs.score.config import ScoreConfig
from beam_jobs.common.inputs import InputError
from beam_jobs.tabular import serving
from beam_jobs.common.options import (OptionsError, is_dataflow, pipeline_options, quiet_logging,
                                      run_pipeline)
from mlbatch.artifacts import ArtifactError, ArtifactWriter
from mlbatch.artifacts.registry import resolve_model_arg
from mlbatch.periods import granularity
from mlbatch import errors, logs
from mlbatch.errors import JobError, UsageError

JOB = "beam_jobs.score"
LOGGER = logging.getLogger("beam_jobs.score")
CODECS = ("snappy", "gzip", "zstd", "brotli", "lz4", "none")


def parse_args(argv: list[str]) -> tuple[ScoreConfig, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True,
                        help="the feature artifact the model was trained on (its schema and "
                             "saved transform_fn are applied)")
    parser.add_argument("--model", required=True,
                        help="an xgboost_model or jax_model artifact directory, or a registered "
                             "version: registry:NAME@ALIAS or registry:NAME/VERSION")
    parser.add_argument("--registry", default=None,
                        help="the model registry store for a registry: --model (default "
                             "$MLBATCH_REGISTRY; docs/registry.md)")
    parser.add_argument("--input", required=True,
                        help="raw tables: a directory or gs:// prefix holding each table's "
                             "schema `path`, a glob or a single file")
    parser.add_argument("--output", required=True, help="output directory (local or gs://)")
    parser.add_argument("--period", default=None,
                        help="the period --input holds (e.g. 2013-10, its Hive folder "
                             "period=2013-10/), recorded with the predictions; an input "
                             "without rows is then refused naming the period")
    parser.add_argument("--schema", default=None,
                        help="a copy of the schema file the features were built with, when "
                             "the recorded path is not readable here (its sha256 must match)")
    parser.add_argument("--chunk-rows", type=int, default=50_000,
                        help="raw records parsed, transformed and scored per batch")
    parser.add_argument("--compression", choices=CODECS, default="snappy",
                        help="Parquet compression codec")
    parser.add_argument("--row-group-rows", type=int, default=100_000,
                        help="rows per Parquet row group")
    parser.add_argument("--num-shards", type=int, default=0,
                        help="prediction files (Parquet and JSON lines; 0: the runner decides)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run in --output")
    parser.add_argument("--verbose", action="store_true",
                        help="also Beam's INFO chatter and TensorFlow's native log lines")
    parser.add_argument("--log-level", default="INFO")
    known, beam_args = parse_job_args(parser, argv, at_least_one=("chunk_rows", "row_group_rows"),
                                      at_least_zero=("num_shards",))
    return frozen(ScoreConfig, known), beam_args




class ScoreJobError(RuntimeError, JobError):
    """The run finished but its output cannot be trusted (left uncommitted, reason named)."""


class ScoreConfigError(ValueError, UsageError):
    """The features, the model and the input do not go together (named in the message)."""


def _inputs(args):
    """(features, schema, model, transform digest) checked to belong together."""
    from mlbatch.artifacts.features import load_feature_set
    from mlbatch.artifacts.models import load_model

    features = load_feature_set(args.features, check_columns=False)
    model = load_model(args.model)
    try:
        trained_on = model.features["digest"]
    except ArtifactError as e:
        raise ScoreConfigError(f"--model {args.model}: no features input recorded ({e})") from e
    if trained_on != features.digest:
        raise ScoreConfigError(
            f"--model {model.uri} was trained on features {trained_on}, not on --features "
            f"{features.root} ({features.digest}): its transform would not match the model")
    schema = serving.schema_of(features, args.schema)
    return features, schema, model, serving.transform_digest(features)


def _check_remote(args, options) -> None:
    """On Dataflow every path is read or written by the workers: gs:// only."""
    if not is_dataflow(options):
        return
    local = [f"--{k} {v}" for k, v in (("features", args.features), ("model", args.model),
                                       ("input", args.input), ("output", args.output))
             if not str(v).startswith("gs://")]
    if local:
        raise OptionsError("DataflowRunner workers cannot read local paths; give gs:// URIs "
                           "for: " + ", ".join(local))


def _serving_inputs(args, schema):
    """serving.check_serving_inputs; with --period, a problem names the period."""
    if args.period is None:
        return serving.check_serving_inputs(args.input, schema)
    granularity(args.period)  # PeriodError (exit 2) for a malformed period
    try:
        return serving.check_serving_inputs(args.input, schema)
    except (InputError, FileNotFoundError) as e:
        raise InputError(f"period {args.period}: {e}") from e


def run(argv: list[str] | None = None, save_main_session: bool = True) -> dict | None:
    """The job: returns the summary of the committed output (None on a dry run).

    Raises a UsageError (mlbatch.errors) for what the user must fix before anything runs, and
    ScoreJobError when the output is left uncommitted (counts that do not reconcile).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args, beam_args = parse_args(argv)
    quiet_logging(args.verbose, extra=("jax",))
    resolved, registered = resolve_model_arg(args.model, args.registry)
    args = dataclasses.replace(args, model=resolved)
    features, schema, model, transform_digest = _inputs(args)
    options = pipeline_options(beam_args, job_name=f"score-{schema.name}",
                               save_main_session=save_main_session, job_flags=args.job_flags)
    _check_remote(args, options)
    dry_run = options.view_as(TestOptions).dry_run
    files, columns = _serving_inputs(args, schema)
    writer = ArtifactWriter(args.output, "predictions", job=JOB, config={
        **recorded(args),
        "pipeline_args": beam_args})
    if not dry_run:
        writer.claim(overwrite=args.overwrite)
        writer.input_artifact("features", features.root, "features")
        writer.input_artifact("model", model.uri, model.type,
                              registered=registered.record() if registered else None)
    from beam_jobs.score import artifacts, pipeline

    t0 = time.perf_counter()
    with writer:  # an exception marks a claimed output failed
        try:
            p = beam.Pipeline(options=options)
        except ValueError as e:  # Beam's own option validation (e.g. a malformed project id)
            raise OptionsError(str(e)) from e
        pipeline.build(p, args, schema, files, features.root, model, transform_digest,
                       columns=columns)
        run_pipeline(p, options)
        if dry_run:
            return None
        timings = {"pipeline_s": round(time.perf_counter() - t0, 3)}
        summary = artifacts.finalize(writer, schema, model, transform_digest, timings)
    m = summary["metrics"]
    LOGGER.info("read %d, scored %d, dead letter %d -> %s", m["rows_read"], m["rows_scored"],
                m["rows_dead_letter"], args.output)
    if summary["failure"]:
        raise ScoreJobError(f"output left uncommitted: {summary['failure']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 when the output is committed, 2 (naming the problem) for usage,
    artifact, option, input and output errors, 1 when the output is left uncommitted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.setup(parse_args(argv)[0].log_level)
    try:
        run(argv)
    except errors.CAUGHT as e:
        return errors.exit_code(None, e)
    return 0


if __name__ == "__main__":
    exit_now(main())
