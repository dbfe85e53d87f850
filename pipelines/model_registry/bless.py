"""python -m pipelines.model_registry.bless --model M --name NAME --features F --output E
    --value auc>=0.6 [--change auc>=-0.01 --change logloss<=+2%] [--slice carrier_id]

The blessing step: registers the candidate model ``M`` under ``NAME`` (its next version,
alias ``candidate``), scores it and the version aliased ``blessed`` on the same eval rows
(the eval split of ``F``, which both were trained on), and checks every threshold overall
and on each slice. All pass: ``blessed`` moves to the candidate (exit 0). One fails: the
alias stays where it was and the step exits 3, naming each failed threshold with its two
numbers. The first model of a name is checked against the value thresholds only.

The registry store: --registry, else $MLBATCH_REGISTRY, else the ``lineage.sqlite``
beside the output directory (a pipeline run's lineage store). The decision is the
``model_evaluation`` artifact in --output (docs/registry.md).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from mlbatch import logs, storage
from mlbatch.artifacts import ArtifactError, ArtifactWriter, write_json
from mlbatch.artifacts import model_evaluation as me
from mlbatch.artifacts.features import FeatureSet, load_feature_set
from mlbatch.artifacts.models import Model, load_model
from mlbatch.errors import UsageError
from mlbatch.artifacts.registry import ENV, RegistryError, resolve, resolve_model_arg
from pipelines.lineage import STORE_NAME, LineageError, LineageStore
from pipelines.model_registry import evaluate
from pipelines.model_registry.store import ModelRegistry, check_name
from pipelines.model_registry.thresholds import (Threshold, ThresholdError, describe,
                                                 parse_threshold)

LOGGER = logging.getLogger(__name__)
JOB = "pipelines.model_registry.bless"
REFUSED_EXIT = 3
USAGE_ERRORS = (ArtifactError, ThresholdError, LineageError, OSError)


class BlessConfigError(ValueError, UsageError):
    """The flags do not go together (the message names the flag)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {JOB}", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the candidate: a committed model "
                   "directory (xgboost_model, jax_model, a Tune run's best/) or registry:...")
    p.add_argument("--name", required=True, help="the registered model's name")
    p.add_argument("--features", required=True, help="the features artifact both models "
                   "were trained on: its eval split is the rows they are compared on")
    p.add_argument("--registry", default=None, help=f"the registry store (SQLite; default "
                   f"${ENV}, else {STORE_NAME} beside --output)")
    p.add_argument("--value", action="append", default=[], help="a value threshold on the "
                   "candidate, e.g. auc>=0.6 or rmse<=12 (repeatable; at least one)")
    p.add_argument("--change", action="append", default=[], help="a change threshold against "
                   "the blessed version, e.g. auc>=-0.01 or logloss<=+2%% (repeatable)")
    p.add_argument("--slice", default=None, help="an eval column: every threshold is also "
                   "checked on each of its values")
    p.add_argument("--min-slice-rows", type=int, default=30,
                   help="slices with fewer eval rows are skipped (and listed)")
    p.add_argument("--after", default=None, help="a model_evaluation this one follows (a "
                   "pipeline's order between blessing steps of one name)")
    p.add_argument("--output", required=True, help="the model_evaluation directory")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


def _thresholds(args: argparse.Namespace) -> list[Threshold]:
    if not args.value:
        raise BlessConfigError("--value: give at least one value threshold (the first model "
                               "of a name is blessed on those alone)")
    if args.min_slice_rows < 1:
        raise BlessConfigError(f"--min-slice-rows {args.min_slice_rows}: must be >= 1")
    return ([parse_threshold(t, "value") for t in args.value]
            + [parse_threshold(t, "change") for t in args.change])


def _check_model(model: Model, fs: FeatureSet, flag: str) -> None:
    trained_on = model.features.get("digest")
    if trained_on != fs.digest:
        raise BlessConfigError(
            f"{flag} {model.uri} was trained on features {trained_on}, not on --features "
            f"{fs.root} ({fs.digest}): the two models would not see the same eval rows")


def _store_path(args: argparse.Namespace) -> str:
    path = args.registry or os.environ.get(ENV)
    if path:
        return os.path.abspath(path)
    if storage.is_remote(args.output):
        raise BlessConfigError(f"--registry: required when --output is remote ({args.output})")
    return os.path.join(os.path.dirname(os.path.abspath(args.output)), STORE_NAME)


def _check_inputs(args: argparse.Namespace) -> tuple[list[Threshold], FeatureSet, Model]:
    """Everything that can be refused before the registry is written."""
    thresholds = _thresholds(args)
    check_name(args.name, "--name")
    fs = load_feature_set(args.features)
    uri, _ = resolve_model_arg(args.model, args.registry)
    model = load_model(uri)
    for th in thresholds:
        th.check_task(model.task)
    _check_model(model, fs, "--model")
    if args.slice and args.slice not in fs.read_table("eval").column_names:
        raise BlessConfigError(f"--slice {args.slice!r}: no such column in the eval split of "
                               f"{fs.root}")
    return thresholds, fs, model


def _baseline(registry: ModelRegistry, name: str, store: str, fs: FeatureSet
              ) -> tuple[int | None, Model | None]:
    blessed = registry.aliases(name).get("blessed")
    if blessed is None:
        return None, None
    model = load_model(resolve(f"registry:{name}/{blessed}", store).uri)
    _check_model(model, fs, f"the blessed version {blessed} of {name}:")
    return blessed, model


def _ref(version: int, model: Model) -> dict:
    return {"version": version, "uri": model.uri, "digest": model.digest}


def _results(args, thresholds, fs, candidate, version, baseline) -> dict:
    rows = evaluate.eval_rows(fs, args.slice)
    keys, skipped = evaluate.slice_keys(rows, candidate.task, args.min_slice_rows)
    cand = evaluate.model_metrics(candidate, rows, keys)
    base = evaluate.model_metrics(baseline[1], rows, keys) if baseline[1] else None
    checks = evaluate.run_checks(thresholds, cand, base, keys)
    failed = [c for c in checks if not c["passed"]]
    return {"name": args.name, "decision": "refused" if failed else "blessed",
            "registry": None, "candidate": _ref(version, candidate),
            "baseline": _ref(*baseline) if baseline[1] else None, "eval_rows": len(rows.labels),
            "slice_column": args.slice, "thresholds": [t.text for t in thresholds],
            "metrics": {"candidate": cand, "baseline": base}, "checks": checks,
            "failed": failed, "skipped_slices": skipped}


def run(argv: list[str] | None = None) -> dict:
    """Registers and evaluates the candidate; returns evaluation.json's content."""
    args = parse_args(argv)
    thresholds, fs, candidate = _check_inputs(args)
    store_path = _store_path(args)
    writer = ArtifactWriter(args.output, me.TYPE, job=JOB, config=vars(args))
    writer.claim(overwrite=args.overwrite)
    try:
        with LineageStore(store_path) as store:
            results = _evaluate(args, writer, store, thresholds, fs, candidate)
    except BaseException as e:
        writer.fail(f"{type(e).__name__}: {e}")
        raise
    LOGGER.info("%s version %d: %s", args.name, results["candidate"]["version"],
                results["decision"])
    return results


def _evaluate(args, writer, store: LineageStore, thresholds, fs, candidate) -> dict:
    registry = ModelRegistry(store)
    if args.after:
        after = me.load_model_evaluation(args.after)
        used = me.registry_path(after.root, after.results["registry"])
        if os.path.abspath(used) != os.path.abspath(str(store.path)):
            raise BlessConfigError(f"--after {args.after} wrote to the registry "
                                   f"{used}, not to {store.path}")
        writer.input_artifact("after", args.after, me.TYPE)
    version = registry.register(args.name, candidate.uri).version
    registry.set_alias(args.name, "candidate", version)
    baseline = _baseline(registry, args.name, str(store.path), fs)
    results = _results(args, thresholds, fs, candidate, version, baseline)
    results["registry"] = me.registry_ref(str(store.path), writer.root)
    writer.input_artifact("model", candidate.uri)
    writer.input_artifact("features", fs.root, "features")
    if baseline[1] is not None:
        writer.input_artifact("baseline", baseline[1].uri)
    write_json(storage.join(writer.root, me.RESULTS), results)
    writer.metrics.update({"version": version, "baseline_version": baseline[0],
                           "checks": len(results["checks"]), "failed": len(results["failed"]),
                           "candidate": results["metrics"]["candidate"]["overall"]})
    with store.transaction():  # the alias moves with the commit, or neither happens
        if results["decision"] == "blessed":
            registry.set_alias(args.name, "blessed", version, action="bless",
                               baseline=baseline[0], evaluation=writer.root)
        writer.commit(body=me.evaluation_section(results))
    return results


def main(argv: list[str] | None = None) -> int:
    try:
        results = run(argv)
    except (BlessConfigError, RegistryError, *USAGE_ERRORS) as e:
        sys.stderr.write(f"{JOB}: error: {e}\n")
        return 2
    if results["decision"] == "blessed":
        return 0
    for check in results["failed"]:  # the run says which threshold failed, with its numbers
        sys.stderr.write(f"{JOB}: {results['name']} version {results['candidate']['version']} "
                         f"refused: {describe(check, results['slice_column'])}\n")
    return REFUSED_EXIT


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
