"""Builds every section of a run's report and commits it as a ``run_report`` artifact::

    RUN/report/index.html     the page: inline CSS, figures as data: URIs, no script
    RUN/report/report.md      the same sections and numbers as Markdown
    RUN/report/figures/*.png  the figures report.md shows
    RUN/report/artifact.json  type run_report; inputs: every artifact the report shows
"""
from __future__ import annotations

import logging
import os

from mlbatch import storage
from mlbatch.artifacts import ArtifactError, ArtifactWriter, Manifest
from pipelines.report import (compare, data, header, lineage, models, registry, serving,
                              svg, text, timeline, tune)
from pipelines.report.blocks import Figure, Section, Svg
from pipelines.report.render import to_html, to_markdown
from pipelines.report.run import REPORT_TYPE, Run, load_run

LOGGER = logging.getLogger(__name__)
JOB = "pipelines.report"
HTML, MARKDOWN, FIGURES = "index.html", "report.md", "figures"
# registry: only when the run has a blessing step (None otherwise: no section at all)
SECTIONS = (("data", data.data_section), ("crosses", data.crosses_section),
            ("models", models.models_section), ("registry", registry.registry_section),
            ("tune", tune.tune_section),
            ("text", text.text_section), ("serving", serving.serving_section),
            ("timeline", timeline.timeline_section),
            ("lineage", lineage.lineage_section))


class ReportError(ArtifactError):
    """The report cannot be built (the message says why)."""


def build_sections(run: Run, previous: Run | None = None) -> list[Section]:
    """The run header (alerts first) and every section, in page order; the comparison
    with ``previous`` before the lineage when there is one."""
    body = [s for s in (build(run) for _, build in SECTIONS) if s is not None]
    cmp = compare.compare_section(previous, run)
    if cmp is not None:
        body.insert(len(body) - 1, cmp)
    top = header.header_section(run, header.alerts(run, serving.breaches(run)))
    return [top, *body]


def _title(run: Run) -> str:
    name = run.doc.get("pipeline") or run.root.rstrip("/").rsplit("/", 1)[-1]
    return f"Run report: {name}"


def _write(out: str, run: Run, sections: list[Section]) -> None:
    title = _title(run)
    storage.write_text(storage.join(out, HTML), to_html(title, sections))
    storage.write_text(storage.join(out, MARKDOWN), to_markdown(title, sections, FIGURES))
    for s in sections:
        for b in s.blocks:
            if isinstance(b, Figure):
                storage.write_bytes(storage.join(out, FIGURES, f"{b.name}.png"), b.png)
            elif isinstance(b, Svg):
                storage.write_text(storage.join(out, FIGURES, f"{b.name}.svg"),
                                   svg.standalone(b.svg))


def build_report(run_dir: str | os.PathLike, output: str | None = None, *,
                 overwrite: bool = False, previous: str | None = None) -> Manifest:
    """Renders RUN's report into ``output`` (default RUN/report) and commits it;
    ``previous``: a run directory to compare with (read before anything is claimed)."""
    run = load_run(str(run_dir))
    before = load_run(previous) if previous else None
    out = storage.locate(output).uri if output else storage.join(run.root, "report")
    writer = ArtifactWriter(out, REPORT_TYPE, job=JOB,
                            config={"run": run.root, "previous": before and before.root})
    writer.claim(overwrite=overwrite)
    with writer:  # an exception marks the output failed
        sections = build_sections(run, before)
        shown = {name for s in sections for name in s.shown}
        for step in run.steps:
            if step.manifest is not None and step.name in shown:
                writer.input_artifact(step.name, step.manifest.root, step.manifest.type)
        _write(out, run, sections)
        alerts = [b.text for b in sections[0].blocks if getattr(b, "kind", "") == "alert"]
        writer.metrics.update(steps=len(run.steps), failed_steps=len(run.failed),
                              alerts=len(alerts))
        return writer.commit(body={
            "html": HTML, "markdown": MARKDOWN, "figures": FIGURES, "alerts": alerts,
            "sections": {s.id: {"title": s.title, "present": s.present,
                                "steps": list(s.shown)} for s in sections}})
