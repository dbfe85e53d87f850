"""Serving over time: which data each step read (name, period, rows) and the period of
every step.

A step's period is the bracket of its name (``score[2013-10]``: the pipeline runner's
per-period instances), else its artifact's ``period`` (``beam_jobs.monitor`` and
``beam_jobs.evaluate`` record one), else a ``period`` in its run.json entry or key
figures, else the step's own name: a step without a period is
its own period, in run order. Two steps of one type (and one monitor mode) that would
share a period label keep their names instead, so no two are drawn as one.
"""
from __future__ import annotations

import posixpath
import re

from mlbatch.periods import PeriodError, granularity
from pipelines.report.blocks import Digest, Table, Text, table
from pipelines.report.run import Run, Step

BRACKET = re.compile(r".*\[(?P<period>[^\]]+)\]$")
# the step types that read data, and the input roles that name what they read
READERS = ("features", "predictions", "monitor", "evaluation")
READ_ROLES = ("raw:", "labels:", "against:")
MAX_FILES = 3


def own_period(step: Step) -> str | None:
    """The bracket of the step's name, else its artifact's recorded period."""
    found = BRACKET.match(step.name)
    if found:
        return found.group("period")
    body = step.manifest.body if step.manifest else {}
    period = body.get("period") if isinstance(body, dict) else None
    if not period and step.manifest and step.type == "features":
        period = step.manifest.config.get("periods")  # the range it trained on
    period = period or step.info.get("period") or (step.info.get("key_figures") or {}).get(
        "period")  # the runner's record of the step, where it keeps one
    return str(period) if period else None


def in_order(labels: list[str]) -> list[str]:
    """Period labels in calendar order (``2013-10`` before ``2013-11``, whatever order the
    steps ran in), then the labels that are not periods (step names) in the order given."""
    def key(item: tuple[int, str]) -> tuple:
        index, label = item
        try:
            return (0, granularity(label), label)
        except PeriodError:
            return (1, "", f"{index:09d}")
    return [label for _, label in sorted(enumerate(dict.fromkeys(labels)), key=key)]


def step_periods(run: Run) -> dict[str, str]:
    """Step name -> the period label the report shows for it (see the module doc)."""
    out, seen = {}, {}
    for step in run.steps:
        label = own_period(step) or step.name
        body = step.manifest.body if step.manifest else {}
        key = (step.type, body.get("mode") if isinstance(body, dict) else None, label)
        if key in seen and seen[key] != step.name:
            out[seen[key]] = seen[key]  # a clash: both keep their step names
            label = step.name
        seen.setdefault(key, step.name)
        out[step.name] = label
    return out


def hover(text: str, full: str) -> Digest:
    """A cell that shows ``text`` and carries ``full`` as its hover title."""
    cell = Digest(text)
    cell.full = full
    return cell


def _names(entries: list[dict]) -> str:
    names = ["/".join(e["uri"].rstrip("/").split("/")[-2:]) for e in entries]
    if len(names) > MAX_FILES:
        common = posixpath.commonpath([e["uri"] for e in entries]).split("/")[-1]
        return f"{len(names)} files in {common or '/'}"
    return ", ".join(names)


def file_names(by_role: dict[str, list[dict]]) -> Digest | str:
    """The files a step read, per role, as people name them: the last two path parts
    (``raw:flights: period=2013-10/flights.csv``); past MAX_FILES of a role, their count
    and folder. The full URIs and sha256 ride along on hover."""
    if not by_role:
        return "–"
    text = "; ".join(f"{role}: {_names(entries)}" for role, entries in by_role.items())
    full = "\n".join(f"{e['uri']} ({str(e.get('sha256', '?'))[:12]})"
                     for entries in by_role.values() for e in entries)
    return hover(text, full)


def counts(step: Step) -> tuple:
    """(rows read, rows used, rows excluded or unmatched, dead letters, what "used" means)."""
    m = step.manifest.metrics
    if step.type == "features":
        s = m.get("stages") or {}
        used = (s.get("train") or 0) + (s.get("eval") or 0) if s else None
        return s.get("read"), used, s.get("excluded"), s.get("dead_letter"), "train + eval"
    if step.type == "predictions":
        return m.get("rows_read"), m.get("rows_scored"), None, m.get("rows_dead_letter"), \
            "scored"
    if step.type == "monitor":
        return m.get("rows_read"), m.get("rows_current"), None, m.get("rows_dead_letter"), \
            "compared"
    return m.get("rows_labels"), m.get("rows_joined"), m.get("rows_labels_unscored"), None, \
        "labels joined to a scored row (excluded: labels of no scored row)"


def read_rows(run: Run) -> list[list]:
    """One row per step that read raw data: step, type, period, the files per role, rows
    read / used / excluded / dead letters of its main table, what "used" means."""
    periods, rows = step_periods(run), []
    for step in run.steps:
        if step.type not in READERS:
            continue
        by_role: dict[str, list[dict]] = {}
        for e in step.manifest.inputs:
            if e.get("kind") == "file" and str(e.get("role", "")).startswith(READ_ROLES):
                by_role.setdefault(e["role"], []).append(e)
        rows.append([step.name, step.type, periods[step.name], file_names(by_role),
                     *counts(step)])
    return rows


def data_read_blocks(run: Run) -> list[Table | Text]:
    rows = read_rows(run)
    if not rows:
        return []
    return [table(["step", "type", "period", "data read (role: files)", "rows read", "used",
                   "excluded", "dead letters", "used means"], rows,
                  "Which data every step read: by name (the full paths and sha256 on hover), "
                  "period and rows of its main table (read = used + excluded + dead letters "
                  "where the job accounts for each; lookup tables' rows: the Data section)")]
