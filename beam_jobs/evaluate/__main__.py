"""Late-label job: the labels of a scored period arrive; the out-of-time metrics.

python -m beam_jobs.evaluate --predictions out/predictions-2013-10 \
    --labels data/labelled/2013-10 --output out/evaluation-2013-10 [--period 2013-10]

The labelled raw data is not the file that was scored, so `<file>:<line>` cannot join
them: both are read as scoring reads them, each row named by the columns the schema
declares as its `identity`, and the stored predictions are joined to the labels on
those. Records AUC/logloss (RMSE/MAE; multiclass: logloss, accuracy, one-vs-rest AUC and
the confusion matrix) on the joined rows beside the model's eval-split figures.
docs/serving.md.
"""
from __future__ import annotations

import argparse
import logging
import sys

import apache_beam as beam

from beam_jobs.tabular import reading, serving
from beam_jobs.common.options import (exit_now, parse_job_args, pipeline_options,
                                      run_pipeline)
from beam_jobs.evaluate.artifacts import evaluate
from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.models import load_model
from mlbatch.artifacts.predictions import Predictions, load_predictions
from mlbatch.schema import DatasetSchema
from mlbatch import errors, logs
from mlbatch.errors import UsageError

JOB = "beam_jobs.evaluate"
LOGGER = logging.getLogger("beam_jobs.evaluate")


class EvaluateConfigError(ValueError, UsageError):
    """The predictions and the labels cannot be joined (named in the message)."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", required=True, help="a predictions artifact")
    parser.add_argument("--labels", required=True,
                        help="the scored period's raw data with its labels: a directory, "
                             "glob or file, as the scoring job's --input")
    parser.add_argument("--output", required=True, help="output directory (local or gs://)")
    parser.add_argument("--period", default=None, help="the period the labels are for "
                        "(recorded, e.g. 2013-10)")
    parser.add_argument("--schema", default=None,
                        help="a copy of the features' schema file (its sha256 must match)")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    return parse_job_args(parser, argv, at_least_one=("chunk_rows",))


def _scored_files(predictions: Predictions, schema: DatasetSchema) -> dict[str, list[str]]:
    """The raw files the predictions were made from, by table (their recorded URIs)."""
    files = {t: [e["uri"] for e in predictions.manifest.inputs if e["role"] == f"raw:{t}"]
             for t in schema.tables}
    missing = [t for t, paths in files.items() if not paths]
    if missing:
        raise EvaluateConfigError(f"--predictions {predictions.root} records no raw file of "
                                  f"table(s) {missing}")
    return files


def _inputs(args):
    """(predictions, schema, the model's eval-split metrics, scored files, labelled files
    and their columns), checked before anything runs."""
    predictions = load_predictions(args.predictions)
    schema = serving.schema_of(load_feature_set(predictions.features_uri, check_columns=False),
                               args.schema)
    if not schema.identity:
        raise EvaluateConfigError(f"schema {schema.source}: no `identity` declared (the "
                                  f"columns that name a row in any file): late labels "
                                  f"cannot be joined to predictions without it")
    needed = serving.needed_columns(schema)
    main = schema.main_table
    label_cols = list(schema.label.expr.columns)
    needed[main.name] = list(dict.fromkeys([*needed[main.name], *schema.identity,
                                            *(c for c in label_cols if c in main.column_names)]))
    labelled = reading.check_inputs(args.labels, list(schema.tables.values()), needed)
    columns = {n: reading.present_columns(schema.tables[n], p) for n, p in labelled.items()}
    eval_split = load_model(predictions.model_uri).metrics
    return predictions, schema, eval_split, _scored_files(predictions, schema), labelled, columns


def run(argv: list[str] | None = None) -> dict:
    """The job: returns the committed metrics."""
    args, beam_args = parse_args(list(sys.argv[1:] if argv is None else argv))
    predictions, schema, eval_split, scored, labelled, columns = _inputs(args)
    options = pipeline_options(beam_args, job_name=f"evaluate-{schema.name}",
                               save_main_session=False)
    writer = ArtifactWriter(args.output, "evaluation", job=JOB, config={
        k: v for k, v in vars(args).items() if k not in ("overwrite", "log_level")})
    writer.claim(overwrite=args.overwrite)
    writer.input_artifact("predictions", predictions.root, "predictions")
    from beam_jobs.evaluate import pipeline
    with writer:  # an exception marks the output failed
        p = beam.Pipeline(options=options)
        pipeline.build(p, args, schema, scored, labelled, columns)
        run_pipeline(p, options)
        return evaluate(writer, schema, predictions, eval_split, args.period, labelled)


def main(argv: list[str] | None = None) -> int:
    """0 committed; 2 (naming the problem) for usage, input and join errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.setup(parse_args(argv)[0].log_level)
    try:
        metrics = run(argv)
    except errors.CAUGHT as e:
        return errors.exit_code(None, e)
    LOGGER.info("out-of-time: %s", metrics)
    return 0


if __name__ == "__main__":
    exit_now(main())
