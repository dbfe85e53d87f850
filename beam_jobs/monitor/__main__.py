"""Skew and drift monitor: new raw data against the training data (skew) or a previous
window (drift), with Vertex AI Model Monitoring's distances and a sample-size-aware null.

python -m beam_jobs.monitor --baseline out/features --input data/new --output out/monitor \
    [--against data/previous | out/monitor_previous] [--model out/xgboost] [Beam flags]

Exit status: 0 nothing breached, 3 something breached, 2 usage or input errors, 1 the
output was left uncommitted. Field reference: docs/monitoring.md.
"""
from __future__ import annotations

import argparse
import logging
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import TestOptions

from beam_jobs.common.options import exit_now, parse_job_args
from beam_jobs.tabular import reading, serving
from beam_jobs.common.options import (OptionsError, is_dataflow, pipeline_options, quiet_logging,
                                      run_pipeline)
from beam_jobs.monitor import alerts, thresholds
from beam_jobs.monitor import model as model_mod
from beam_jobs.monitor import pipeline, report, stats
from beam_jobs.monitor import drift
from mlbatch import storage
from mlbatch.artifacts import MANIFEST, PENDING, ArtifactWriter
from mlbatch.artifacts.base import read_manifest, write_json
from mlbatch.artifacts.drift_history import HISTORY, history_document, load_history
from mlbatch.artifacts.features import FeatureSet, load_feature_set
from mlbatch.artifacts.monitor import ANOMALIES, DRIFT, HISTOGRAMS, load_monitor
from mlbatch.artifacts.registry import resolve_model_arg
from mlbatch import errors, logs
from mlbatch.errors import JobError, UsageError

JOB = pipeline.JOB
LOGGER = logging.getLogger("beam_jobs.monitor")
EXIT_BREACH = 3


class MonitorUsageError(ValueError, UsageError):
    """Inputs that cannot be monitored as given (named in the message)."""


class MonitorJobError(RuntimeError, JobError):
    """The run finished but its output cannot be trusted (left uncommitted)."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True,
                        help="the committed feature directory the model was trained on")
    parser.add_argument("--input", required=True, help="raw data of the new window "
                        "(directory, glob, single file or gs:// prefix; as the feature job)")
    parser.add_argument("--output", required=True, help="output directory (local or gs://)")
    parser.add_argument("--against", default=None, help="drift: raw data of a previous "
                        "window, or a previous monitor output (same baseline)")
    parser.add_argument("--model", default=None, help="a committed xgboost_model or "
                        "jax_model trained on --baseline (or registry:NAME@ALIAS): adds "
                        "prediction drift")
    parser.add_argument("--registry", default=None, help="the model registry store for a "
                        "registry: --model (default $MLBATCH_REGISTRY; docs/registry.md)")
    parser.add_argument("--schema", default=None, help="a copy of the schema file the "
                        "features were built with (default: the path they record)")
    parser.add_argument("--skew-sample", type=int, default=1000,
                        help="training rows re-transformed for the transform-skew check")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--period", default=None, help="the new window's period in the "
                        "drift history (default: the last part of --input)")
    parser.add_argument("--history", default=None, help="a previous monitor output of the "
                        "same baseline: its drift history is carried and extended")
    parser.add_argument("--threshold", action="append", metavar="NAME=VALUE", help="a "
                        "threshold for a raw column or feature, label, prediction, "
                        "attribution or attribution/<feature> (repeatable)")
    parser.add_argument("--attributions", action="store_true", help="with --model: "
                        "feature attribution drift (XGBoost pred_contribs; JAX gradient x input)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    return parse_job_args(parser, argv, at_least_one=("skew_sample", "chunk_rows"))




def baseline_files(features: FeatureSet) -> dict[str, list[str]]:
    """The raw files the feature job read (its manifest's "raw:<table>" inputs), each
    checked against the size and sha256 it recorded: the baseline is the training data."""
    files: dict[str, list[str]] = {}
    for entry in features.manifest.inputs:
        if entry["kind"] != "file" or not entry["role"].startswith("raw:"):
            continue
        uri = entry["uri"]
        if not storage.exists(uri):
            raise MonitorUsageError(f"baseline raw file {uri} (recorded by {features.root}) "
                                    f"no longer exists: the training data cannot be read")
        if storage.sha256(uri) != entry["sha256"]:
            raise MonitorUsageError(f"baseline raw file {uri} changed since the features at "
                                    f"{features.root} were built from it (sha256 differs)")
        files.setdefault(entry["role"][4:], []).append(uri)
    if not files:
        raise MonitorUsageError(f"{features.root} records no raw input files")
    return files


def _previous(uri: str, features: FeatureSet, keys: set[str]) -> dict:
    prev = load_monitor(uri)
    if prev.baseline_digest != features.digest:
        raise MonitorUsageError(f"--against {uri} was measured against another baseline "
                                f"({prev.baseline_digest}, not {features.digest})")
    lacking = sorted(keys - set(prev.histograms))
    if lacking:
        raise MonitorUsageError(f"--against {uri} holds no counts of {lacking} (e.g. it "
                                f"was run without --model)")
    return report.previous_statistics(prev.histograms, keys)


def _check_model(uri: str, features: FeatureSet) -> None:
    model_mod.model_type(uri)
    m = read_manifest(uri)
    trained_on = next((e.get("digest") for e in m.inputs if e["role"] == "features"), None)
    if trained_on != features.digest:
        raise MonitorUsageError(f"--model {uri} was trained on features {trained_on}, not on "
                                f"--baseline {features.root} ({features.digest})")


def make_plan(args, features: FeatureSet) -> pipeline.Plan:
    schema = serving.schema_of(features, args.schema)
    tables = list(schema.tables.values())
    needed = serving.needed_columns(schema)  # label-free data is monitored too
    multiclass = schema.label.task == "multiclass_classification"
    label = stats.Column(schema.label.name, "numeric" if schema.label.task == "regression"
                         else "categorical", stage="label", column=serving.LABEL,
                         classes=features.classes if multiclass else ())
    raw = [*stats.raw_columns(schema), label]
    transformed = stats.transformed_columns(schema, features.features)
    prediction = None
    if args.model:
        _check_model(args.model, features)
        prediction = stats.Column(model_mod.PREDICTION, "categorical" if multiclass
                                  else "numeric", stage="prediction")
    against, previous = None, None
    if args.against and any(storage.exists(storage.join(args.against, marker))
                            for marker in (MANIFEST, PENDING)):  # an artifact, maybe failed
        keys = {c.key for c in [*raw, *transformed, *([prediction] if prediction else [])]}
        previous = _previous(args.against, features, keys)
    elif args.against:
        against = reading.check_inputs(args.against, tables, needed)
    if args.attributions and not args.model:
        raise MonitorUsageError("--attributions needs --model (the attributions are the model's)")
    model = model_mod.load_model(args.model) if args.attributions else None
    if model is not None and multiclass and model.type != "xgboost_model":
        raise MonitorUsageError("--attributions: a multiclass_classification JAX model's "
                                "attributions are not supported yet (XGBoost's are)")
    inputs = model.feature_names if model is not None else ()
    given = thresholds.parse(args.threshold)
    cols, attr_thresholds = thresholds.apply(
        given, [*raw, *transformed, *([prediction] if prediction else [])], inputs)
    raw, transformed = cols[:len(raw)], cols[len(raw):len(raw) + len(transformed)]
    prediction = cols[-1] if prediction else None
    if previous is not None and args.attributions and not previous["attribution"]:
        raise MonitorUsageError(f"--against {args.against} holds no attributions (it was run "
                                "without --attributions)")
    rate = min(1.0, args.skew_sample / max(1, features.num_rows("train")))
    return pipeline.Plan(schema=schema, features=features, output=storage.locate(args.output).uri,
                         baseline=baseline_files(features),
                         current=reading.check_inputs(args.input, tables, needed),
                         against=against,
                         previous=previous, model=args.model, raw=raw, transformed=transformed,
                         prediction=prediction, skew_rate=rate, chunk_rows=args.chunk_rows,
                         attributions=args.attributions, attribution_thresholds=attr_thresholds)


def _record_inputs(writer: ArtifactWriter, args, plan: pipeline.Plan,
                   registered: dict | None = None) -> None:
    writer.input_artifact("baseline", args.baseline, "features")
    for table, files in plan.current.items():
        for f in files:
            writer.input_file(f"raw:{table}", f)
    if plan.previous is not None:
        writer.input_artifact("against", args.against, "monitor")
    for table, files in (plan.against or {}).items():
        for f in files:
            writer.input_file(f"against:{table}", f)
    if args.model:
        writer.input_artifact("model", args.model, registered=registered)
    if args.history:
        writer.input_artifact("history", args.history, "monitor")


def _check_remote(args, plan: pipeline.Plan, options) -> None:
    """On Dataflow every path is read or written by the workers: gs:// only (the
    training run's recorded raw files too)."""
    if not is_dataflow(options):
        return
    paths = [(f"--{k}", v) for k, v in (("baseline", args.baseline), ("input", args.input),
                                       ("output", args.output), ("against", args.against),
                                       ("model", args.model)) if v]
    paths += [("baseline raw file", f) for files in plan.baseline.values() for f in files]
    local = [f"{what} {v}" for what, v in paths if not str(v).startswith("gs://")]
    if local:
        raise OptionsError("DataflowRunner workers cannot read local paths; give gs:// URIs "
                           "for: " + ", ".join(local))


def run(argv: list[str] | None = None, save_main_session: bool = True) -> dict | None:
    """The job: returns drift.json's document (None on a dry run). Raises one of
    a UsageError (mlbatch.errors) for what the user must fix, MonitorJobError when the output is left
    uncommitted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, beam_args = parse_args(argv)
    quiet_logging(args.verbose)
    registered = None
    if args.model:
        args.model, registered = resolve_model_arg(args.model, args.registry)
    features = load_feature_set(args.baseline)
    plan = make_plan(args, features)
    carried = _carried_history(args, features)
    options = pipeline_options(beam_args, job_name=f"monitor-{plan.schema.name}",
                               save_main_session=save_main_session, job_flags=args.job_flags)
    _check_remote(args, plan, options)
    dry_run = options.view_as(TestOptions).dry_run
    writer = ArtifactWriter(args.output, "monitor", job=JOB, config={
        **{k: v for k, v in vars(args).items()
           if k not in ("overwrite", "log_level", "verbose", "job_flags")},
        "pipeline_args": beam_args})
    if not dry_run:
        writer.claim(overwrite=args.overwrite)
    with writer:  # an exception marks a claimed output failed
        _record_inputs(writer, args, plan, registered.record() if registered else None)
        p = beam.Pipeline(options=options)
        pipeline.build(p, plan)
        run_pipeline(p, options)
        if dry_run:
            return None
        return _finish(writer, plan, args, carried)


def period_of(args) -> str:
    """--period, or the last part of --input (a file's name without its extension)."""
    if args.period:
        return args.period
    last = str(args.input).rstrip("/").rsplit("/", 1)[-1]
    return last.split(".", 1)[0] or last


def _carried_history(args, features: FeatureSet) -> list:
    """The rows of --history (same baseline), checked not to hold this run's period."""
    if not args.history:
        return []
    prev = load_monitor(args.history)
    if prev.baseline_digest != features.digest:
        raise MonitorUsageError(f"--history {args.history} was measured against another "
                                f"baseline ({prev.baseline_digest}, not {features.digest})")
    rows = load_history(args.history)
    alerts.check_new_period(rows, period_of(args), "drift" if args.against else "skew")
    return rows


def _write_outcome(writer: ArtifactWriter, doc: dict, args, carried: list) -> dict:
    """history.json, and alert.json on a breach; the manifest body's entries for them."""
    period, run_uri = period_of(args), writer.root
    rows = alerts.history(doc, carried, period=period, run=run_uri)
    write_json(storage.join(writer.root, HISTORY), history_document(rows))
    body = {"history": HISTORY, "period": period}
    if doc["verdict"] == "breach":
        alert = alerts.alert_document(doc, period=period, run=run_uri, exit_status=EXIT_BREACH)
        write_json(storage.join(writer.root, alerts.ALERT), alert)
        body["alert"] = alerts.ALERT
        LOGGER.warning("alert: %d comparison(s) breached in period %s: %s", len(alert["breached"]),
                       period, ", ".join(f"{b['stage']}/{b['name']}" for b in alert["breached"]))
    return body


def _finish(writer: ArtifactWriter, plan: pipeline.Plan, args, carried: list) -> dict:
    path = storage.join(plan.output, pipeline.STATISTICS)
    result = pipeline.decode_result(storage.read_bytes(path))
    storage.delete(path)
    counts = result["counts"]
    main = plan.schema.main
    read, prepared = counts.get(f"{main}_read", 0), counts.get("prepared", 0)
    dead = counts.get(f"{main}_dead_letter", 0)
    if read != prepared + dead:
        raise MonitorJobError(f"counts do not reconcile: {main} read {read} != prepared "
                              f"{prepared} + dead letters {dead}")
    doc = report.drift_document(result, plan, baseline=plan.features, against=args.against)
    write_json(storage.join(plan.output, DRIFT), doc)
    write_json(storage.join(plan.output, HISTOGRAMS), {**report.histograms(
        result, report.stage_columns(plan), plan.previous),
        **report.attribution_histograms(report.attribution_sides(result, plan.previous))})
    report.write_text(plan.output, ANOMALIES, report.anomalies(report.all_entries(doc), doc["mode"]))
    writer.metrics.update(features_checked=len(doc["features"]),
                          features_breached=sum(f["breach"] for f in doc["features"]),
                          verdict=doc["verdict"], rows_read=read, rows_current=prepared,
                          rows_dead_letter=dead, rows_reference=doc["n_reference"])
    outcome = _write_outcome(writer, doc, args, carried)
    writer.commit(body={**outcome, "mode": doc["mode"], "verdict": doc["verdict"], "drift": DRIFT,
                        "histograms": HISTOGRAMS, "anomalies": ANOMALIES,
                        "threshold_default": drift.DEFAULT_THRESHOLD})
    LOGGER.info("%s: %s (%d of %d features breached) -> %s", doc["mode"], doc["verdict"],
                writer.metrics["features_breached"], len(doc["features"]), plan.output)
    return doc


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 ok, 3 a breach, 2 usage/input errors, 1 uncommitted output."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.setup(parse_args(argv)[0].log_level)
    try:
        doc = run(argv)
    except errors.CAUGHT as e:
        return errors.exit_code(None, e)
    return EXIT_BREACH if doc is not None and doc["verdict"] == "breach" else 0


if __name__ == "__main__":
    exit_now(main())
