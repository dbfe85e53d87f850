"""The Registry section: each blessing step's decision, the versions it compared and every
threshold check with its two numbers.

Reads ``model_evaluation`` artifacts (``python -m pipelines.model_registry.bless``) through
``mlbatch.artifacts.model_evaluation.load_model_evaluation``. A run without a blessing
step, or an mlbatch without that reader, gets no Registry section at all (``None``): the
page shows nothing rather than an empty heading.

``evaluation.json`` (as the reader returns it): name, decision (blessed | refused),
registry, candidate and baseline {version, uri, digest} (baseline null for a name's first
model), eval_rows, slice_column, checks [{metric, kind: value|change, op, threshold,
relative, text, slice, candidate, baseline, change, passed, reason?}], failed,
skipped_slices [{slice, rows, reason}].
"""
from __future__ import annotations

import logging
import os

from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.model_evaluation import registry_path
from pipelines.lineage import LineageError, LineageStore
from pipelines.model_registry import ModelRegistry
from pipelines.model_registry.thresholds import describe
from pipelines.report.blocks import Digest, Section, Text, fmt, short_digest, table
from pipelines.report.run import Run
from pipelines.report.serving import _reader

LOGGER = logging.getLogger(__name__)
TYPE = "model_evaluation"
# the registered metrics the version list shows, in this order, where a version has them
VERSION_METRICS = ("auc", "eval_auc", "logloss", "eval_logloss", "accuracy", "eval_accuracy",
                   "rmse", "eval_rmse", "mae", "eval_mae")


def _pct(value: float | None, relative: bool) -> float | str | None:
    if value is None or not relative:
        return value
    return f"{value * 100:+.3g}%"


def check_rows(checks: list[dict]) -> list[list]:
    """Failed checks first, then overall before slices, in the order they were checked."""
    ordered = sorted(enumerate(checks), key=lambda ic: (bool(ic[1].get("passed")),
                                                        ic[1].get("slice") is not None, ic[0]))
    return [[c.get("metric"), c.get("kind"),
             "overall" if c.get("slice") is None else f"slice {c['slice']}",
             c.get("text") or f"{c.get('metric')}{c.get('op')}{c.get('threshold')}",
             c.get("candidate"), c.get("baseline"), _pct(c.get("change"), c.get("relative")),
             "pass" if c.get("passed") else "FAIL" + (f": {c['reason']}" if c.get("reason")
                                                      else "")]
            for _, c in ordered]


def version_rows(results: dict) -> list[list]:
    rows = []
    for role in ("candidate", "baseline"):
        v = results.get(role)
        rows.append([role, results.get("name"), v.get("version") if v else None,
                     short_digest(v.get("digest")) if v else None,
                     v.get("uri") if v else "none: the first model of this name is checked "
                                            "against the value thresholds only"])
    return rows


def decision_text(step_name: str, results: dict) -> Text:
    """One line: blessed, or refused with the first failed check's numbers."""
    cand = (results.get("candidate") or {}).get("version")
    name = results.get("name")
    if results.get("decision") == "blessed":
        return Text(f"{step_name}: {name} version {cand} is blessed (every threshold passed "
                    f"on {fmt(results.get('eval_rows'))} eval rows); the blessed alias "
                    "points to it.", "ok")
    failed = results.get("failed") or []
    why = "; ".join(f"{r[2]} {r[3]}: candidate {fmt(r[4])}, blessed {fmt(r[5])}"
                    if r[1] == "change" else f"{r[2]} {r[3]}: candidate {fmt(r[4])}"
                    for r in check_rows(failed))
    blessed = (results.get("baseline") or {}).get("version")
    return Text(f"{step_name}: {name} version {cand} is refused ({why or 'no check passed'}); "
                + (f"version {blessed} stays blessed." if blessed else "nothing is blessed."),
                "alert")


def evaluation_blocks(step_name: str, results: dict) -> list:
    blocks = [decision_text(step_name, results),
              table(["role", "model name", "version", "digest", "model"],
                    version_rows(results), f"Versions compared by {step_name}"),
              table(["metric", "kind", "where", "threshold", "candidate", "blessed", "change",
                     "result"], check_rows(results.get("checks", [])),
                    f"Thresholds of {step_name} (failed first), per slice of "
                    f"{results.get('slice_column') or '– (no slices declared)'}")]
    skipped = results.get("skipped_slices") or []
    if skipped:
        blocks.append(table(["slice", "rows", "why not checked"],
                            [[s.get("slice"), s.get("rows"), s.get("reason")] for s in skipped],
                            "Slices not checked"))
    return blocks


def version_metrics(metrics: dict) -> dict:
    return {k: metrics[k] for k in VERSION_METRICS
            if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics[k], bool)}


def thresholds_text(results: dict) -> Digest | str:
    """A blessing's checks in one cell: how many passed and the first failed one with its
    two numbers; every check, failed first, each with its two numbers, on hover (the
    blessing's own table above lists them one per row)."""
    checks = sorted(results.get("checks", []), key=lambda c: bool(c.get("passed")))
    if not checks:
        return "–"
    every = [describe(c, results.get("slice_column")) for c in checks]
    failed = sum(not c.get("passed") for c in checks)
    if len(checks) == 1:
        return every[0]
    cell = Digest(f"{failed} of {len(checks)} failed, first: {every[0]}" if failed
                  else f"all {len(checks)} passed, e.g. {every[0]}")
    cell.full = "; ".join(every)
    return cell


def decision_cell(results: dict | None) -> str:
    if results is None:
        return "not evaluated by a blessing this run or the registry can show"
    against = (results.get("baseline") or {}).get("version")
    return results.get("decision", "?") + (f" against version {against}" if against
                                            else " (first of its name: value thresholds only)")


def _evaluations_by_version(run: Run, load, name: str, registry: ModelRegistry) -> dict:
    """Candidate version -> the blessing results that decided on it: this run's blessing
    steps, else the evaluation an earlier blessing recorded in the alias history."""
    found = {}
    for move in registry.history(name, "blessed"):
        if move.get("action") == "bless" and move.get("evaluation"):
            try:
                found[move["version"]] = load(move["evaluation"]).results
            except ArtifactError as e:
                LOGGER.info("blessing of %s %s: %s", name, move["version"], e)
    for step in run.of_type(TYPE):
        try:
            results = load(step.uri).results
        except ArtifactError:
            continue
        if results.get("name") == name:
            found[(results.get("candidate") or {}).get("version")] = results
    return found


def registered_rows(run: Run, load, store_file: str, name: str) -> list[list]:
    with LineageStore(store_file) as store:
        registry = ModelRegistry(store)
        versions = registry.versions(name)
        decided = _evaluations_by_version(run, load, name, registry)
    return [[name, v.version, short_digest(v.digest), v.model_type, ", ".join(v.aliases) or "–",
             version_metrics(v.metrics) or None, decision_cell(decided.get(v.version)),
             thresholds_text(decided[v.version]) if v.version in decided else "–",
             v.registered_at] for v in versions]


def _stores(run: Run, load) -> dict[tuple[str, str], str]:
    """(registry store file, model name) -> the blessing step that named them."""
    out = {}
    for step in run.of_type(TYPE):
        try:
            ev = load(step.uri)
        except ArtifactError:
            continue
        path = registry_path(ev.root, str(ev.results.get("registry") or ""))
        out.setdefault((path, ev.results.get("name")), step.name)
    return out


def versions_blocks(run: Run, load) -> list:
    """Every version of each model name the run's blessings used, from their registry."""
    blocks = []
    for (path, name), step_name in _stores(run, load).items():
        if not os.path.isfile(path):
            blocks.append(Text(f"{step_name}: its registry store {path} is gone; the version "
                               "list cannot be shown.", "alert"))
            continue
        try:
            rows = registered_rows(run, load, path, name)
        except (LineageError, ArtifactError) as e:
            blocks.append(Text(f"{step_name}: the registry store {path}: {e}", "alert"))
            continue
        blocks.append(table(["model name", "version", "digest", "type", "aliases",
                             "metrics (registered)", "blessing", "thresholds (two numbers)",
                             "registered"], rows,
                            f"Every version of {name} in the registry {path}"))
    return blocks


def registry_section(run: Run) -> Section | None:
    """The blessing steps of the run; None when it has none (no section on the page)."""
    steps = run.of_type(TYPE)
    load = _reader("model_evaluation", "load_model_evaluation") if steps else None
    if load is None:
        return None
    blocks, shown = [], []
    for step in steps:
        try:
            blocks += evaluation_blocks(step.name, load(step.uri).results)
            shown.append(step.name)
        except ArtifactError as e:
            LOGGER.warning("blessing step %s: %s", step.name, e)
            blocks.append(Text(f"{step.name}: {e}", "alert"))
    blocks += versions_blocks(run, load)
    return Section("registry", "Registry", tuple(blocks), shown=tuple(shown))
