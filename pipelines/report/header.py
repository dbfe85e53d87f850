"""The top of the report: what went wrong (first), then the run and its steps."""
from __future__ import annotations

from pipelines.report.blocks import Section, Text, fmt, short_digest, table
from pipelines.report.run import Run, Step

# key figures the step table shows in columns of their own (artifact type, digest)
SHOWN_ELSEWHERE = ("type", "digest")


def not_selected(step: Step, run: Run) -> bool:
    """Skipped because ``--only``/``--from`` left it out (the runner records no error and
    none of its inputs failed), not because an upstream step failed."""
    if step.status != "skipped" or step.info.get("error"):
        return False
    failed = {s.name for s in run.failed}
    return not failed & set(step.info.get("inputs") or [])


def alerts(run: Run, breaches: list[str]) -> list[str]:
    """Failed steps, steps skipped because an upstream step failed, a failed run,
    breached drift thresholds. Steps a partial run did not select are no alert."""
    out = []
    if run.doc.get("status") == "failed":
        out.append(f"The run failed ({len(run.failed)} failed step(s)).")
    for s in run.failed:
        why = s.info.get("error") or s.problem or "no error recorded"
        out.append(f"Step {s.name} ({s.info.get('job', '?')}) failed: {why}")
    for s in run.steps:
        if s.status == "skipped" and not not_selected(s, run):
            why = s.info.get("error") or "an upstream step failed"
            out.append(f"Step {s.name} was skipped: {why}.")
        elif s.status in ("done", "cached") and s.manifest is None:
            out.append(f"Step {s.name} is marked {s.status} but its output is not a committed "
                       f"artifact: {s.problem}")
    return out + breaches


def key_figures(figures: dict | None) -> str:
    """A step's key figures as ``name value`` pairs, numbers formatted, no digest in full
    (the step's artifact digest is its own column)."""
    return fmt({k: v for k, v in (figures or {}).items() if k not in SHOWN_ELSEWHERE}) \
        if figures else "–"


def step_status(step: Step, run: Run) -> str:
    if not_selected(step, run):
        return ("not run (not selected; output of an earlier run shown)" if step.manifest
                else "not run (not selected)")
    return step.status


def datasets(run: Run) -> list[str]:
    names = []
    for s in run.steps:
        schema = s.manifest.doc.get("schema") if s.manifest else None
        if schema and schema.get("name") not in names:
            names.append(schema.get("name"))
    return names


def _rendering_now(run: Run) -> list[str]:
    """The report steps still running: this report, rendered as the run's last step."""
    return [s.name for s in run.steps
            if s.status == "running" and s.info.get("job") == "pipelines.report"]


def summary_line(run: Run, itself: list[str]) -> str:
    """The green line of a run without alerts: how many steps ran and succeeded."""
    ran = [s for s in run.steps if s.name not in itself and not not_selected(s, run)]
    skipped = len(run.steps) - len(itself) - len(ran)
    line = f"All {len(ran)} steps{' before this report' if itself else ''} succeeded"
    if not ran:
        line = f"No step ran{' before this report' if itself else ''}"
    if skipped:
        line += f" ({skipped} not selected in this run)"
    return line + "; no drift threshold was breached."


def run_status(run: Run, itself: list[str], problems: list[str]) -> tuple[str, str]:
    """(status, ended) as the page says them. A run whose only running step is this
    report has finished everything else: it reads finished, not running."""
    status, ended = run.doc.get("status"), run.doc.get("ended")
    if status == "running" and itself and not problems:
        others = [s for s in run.steps if s.name not in itself]
        if all(s.status in ("done", "cached") or not_selected(s, run) for s in others):
            return (f"succeeded (every step finished; this report is its last step, "
                    f"{', '.join(itself)})", ended or "– (this report is the last step)")
    return status, ended


def header_section(run: Run, problems: list[str]) -> Section:
    doc = run.doc
    blocks = [Text(p, "alert") for p in problems]
    itself = _rendering_now(run)
    if not problems:
        blocks.append(Text(summary_line(run, itself), "ok"))
    status, ended = run_status(run, itself, problems)
    facts = [["pipeline", doc.get("pipeline", "– (no run.json)")], ["spec", doc.get("spec")],
             ["spec digest", short_digest(doc.get("spec_digest"))],
             ["dataset", ", ".join(datasets(run)) or None], ["status", status],
             ["started", doc.get("started")], ["ended", ended],
             ["run directory", run.root]]
    blocks.append(table(["run", ""], facts))
    rows = []
    for s in run.steps:
        i = s.info
        wall = i.get("elapsed_s")
        if wall is None and s.manifest is not None:
            wall = s.manifest.doc.get("timings", {}).get("wall_s")
        rows.append([s.name, i.get("job") or (s.manifest.doc.get("producer", {}).get("job")
                                              if s.manifest else None),
                     i.get("runs_on"), step_status(s, run), wall,
                     short_digest(i.get("cache_key"), 10), s.type,
                     short_digest(s.manifest.digest) if s.manifest else None,
                     key_figures(i.get("key_figures")), i.get("error")])
    blocks.append(table(["step", "job", "runs on", "status", "elapsed s", "cache key",
                         "artifact", "digest", "key figures", "error"], rows,
                        "Where each step ran and how long it took"))
    versions = doc.get("versions") or {}
    if versions:
        blocks.append(table(list(versions), [list(versions.values())], "Versions"))
    return Section("run", "Run", tuple(blocks))
