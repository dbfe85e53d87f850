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

from mlbatch.artifacts import ArtifactError
from pipelines.report.blocks import Section, Text, fmt, short_digest, table
from pipelines.report.run import Run
from pipelines.report.serving import _reader

LOGGER = logging.getLogger(__name__)
TYPE = "model_evaluation"


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
    return Section("registry", "Registry", tuple(blocks), shown=tuple(shown))
