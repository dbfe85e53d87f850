"""The top of the report: what went wrong (first), then the run and its steps."""
from __future__ import annotations

from pipelines.report.blocks import Section, Text, short_digest, table
from pipelines.report.run import Run


def alerts(run: Run, breaches: list[str]) -> list[str]:
    """Failed and skipped steps, a failed run, breached drift thresholds."""
    out = []
    if run.doc.get("status") == "failed":
        out.append(f"The run failed ({len(run.failed)} failed step(s)).")
    for s in run.failed:
        why = s.info.get("error") or s.problem or "no error recorded"
        out.append(f"Step {s.name} ({s.info.get('job', '?')}) failed: {why}")
    for s in run.steps:
        if s.status == "skipped":
            out.append(f"Step {s.name} was skipped (an upstream step failed).")
        elif s.status in ("done", "cached") and s.manifest is None:
            out.append(f"Step {s.name} is marked {s.status} but its output is not a committed "
                       f"artifact: {s.problem}")
    return out + breaches


def _figures(key_figures: dict | None) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in (key_figures or {}).items())


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


def header_section(run: Run, problems: list[str]) -> Section:
    doc = run.doc
    blocks = [Text(p, "alert") for p in problems]
    itself = _rendering_now(run)
    if not problems:
        others = len(run.steps) - len(itself)
        blocks.append(Text(f"All {others} steps{' before this report' if itself else ''} "
                           "succeeded; no drift threshold was breached.", "ok"))
    status = doc.get("status")
    if status == "running" and itself:
        status = f"running (this report is its step {', '.join(itself)})"
    facts = [["pipeline", doc.get("pipeline", "– (no run.json)")], ["spec", doc.get("spec")],
             ["spec digest", short_digest(doc.get("spec_digest"))],
             ["dataset", ", ".join(datasets(run)) or None], ["status", status],
             ["started", doc.get("started")], ["ended", doc.get("ended")],
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
                     i.get("runs_on"), s.status, wall, short_digest(i.get("cache_key"), 10),
                     s.type, _figures(i.get("key_figures")), i.get("error")])
    blocks.append(table(["step", "job", "runs on", "status", "elapsed s", "cache key",
                         "artifact", "key figures", "error"], rows,
                        "Where each step ran and how long it took"))
    versions = doc.get("versions") or {}
    if versions:
        blocks.append(table(list(versions), [list(versions.values())], "Versions"))
    return Section("run", "Run", tuple(blocks))
