"""The Comparison section: this run beside a previous one (``--previous RUN``).

Both runs are read the way the report reads one (``run.json`` and each step's
``artifact.json``): the pipeline, spec digest and library versions; per step its status,
cache key and artifact digest; every key figure of both runs side by side, with what
changed. Without ``--previous`` there is no section (``None``).
"""
from __future__ import annotations

from pipelines.report.blocks import Section, Text, short_digest, table
from pipelines.report.header import SHOWN_ELSEWHERE
from pipelines.report.run import Run, Step


def _digest(step: Step | None) -> str | None:
    return step.manifest.digest if step is not None and step.manifest else None


def _changed(a, b) -> str:
    return "same" if a == b else "changed"


def run_rows(previous: Run, current: Run) -> list[list]:
    """Run-level facts: pipeline, spec digest, status, every library version."""
    keys = [("pipeline", "pipeline"), ("spec digest", "spec_digest"), ("status", "status"),
            ("started", "started")]
    rows = []
    for label, key in keys:
        a, b = previous.doc.get(key), current.doc.get(key)
        if key == "spec_digest":
            a, b = short_digest(a), short_digest(b)
        rows.append([label, a, b, "–" if key == "started" else _changed(a, b)])
    va, vb = previous.doc.get("versions") or {}, current.doc.get("versions") or {}
    for name in sorted(set(va) | set(vb)):
        rows.append([f"version {name}", va.get(name), vb.get(name),
                     _changed(va.get(name), vb.get(name))])
    return rows


def step_rows(previous: Run, current: Run) -> list[list]:
    """Per step (this run's order, then steps only the previous run had): status, cache
    key and artifact digest on both sides."""
    a = {s.name: s for s in previous.steps}
    b = {s.name: s for s in current.steps}
    names = [s.name for s in current.steps] + [n for n in a if n not in b]
    rows = []
    for n in names:
        sa, sb = a.get(n), b.get(n)
        da, db = _digest(sa), _digest(sb)
        verdict = ("only in this run" if sa is None else "only in the previous run"
                   if sb is None else "same artifact" if da and da == db else "changed")
        rows.append([n, sa.status if sa else None, sb.status if sb else None,
                     short_digest(da), short_digest(db), verdict])
    return rows


def _figures(step: Step | None) -> dict:
    figures = (step.info.get("key_figures") or {}) if step else {}
    return {k: v for k, v in figures.items() if k not in SHOWN_ELSEWHERE}


def _flat(figures: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in figures.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _delta(a, b):
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return b - a if numbers else None


def figure_rows(previous: Run, current: Run) -> list[list]:
    """Every key figure (metrics, rows, verdicts) of both runs, per step: previous, this,
    the change (numbers) and whether it changed."""
    a = {s.name: s for s in previous.steps}
    rows = []
    for sb in current.steps:
        fa, fb = _flat(_figures(a.get(sb.name))), _flat(_figures(sb))
        for key in [*fb, *[k for k in fa if k not in fb]]:
            va, vb = fa.get(key), fb.get(key)
            rows.append([sb.name, key, va, vb, _delta(va, vb), _changed(va, vb)])
    return rows


def compare_section(previous: Run | None, current: Run) -> Section | None:
    if previous is None:
        return None
    figures = figure_rows(previous, current)
    changed = sum(1 for r in figures if r[-1] == "changed")
    blocks = [Text(f"Compared with the previous run {previous.root}: {changed} of "
                   f"{len(figures)} key figures changed.", "p"),
              table(["run", "previous", "this run", ""], run_rows(previous, current),
                    "The two runs"),
              table(["step", "previous status", "status", "previous digest", "digest", ""],
                    step_rows(previous, current), "Steps and their artifacts (the same "
                    "digest: the same bytes, e.g. a cached step)"),
              table(["step", "key figure", "previous", "this run", "change", ""], figures,
                    "Key figures side by side")]
    return Section("compare", "Comparison", tuple(blocks))
