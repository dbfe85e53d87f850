"""The Over time section: which data every step read, the drift timeline per feature
(from the monitors' drift histories) and the out-of-time metric per period (from the
late-label ``evaluation`` artifacts).

History rows are read through ``mlbatch.artifacts.drift_history.load_history`` (a monitor
without a history contributes its own drift.json through ``history_rows``); evaluations
through ``mlbatch.artifacts.evaluation.load_evaluation``. The newest monitor of a series
carries the rows of the earlier ones: rows of another monitor step of this run are taken
from that step, once.
"""
from __future__ import annotations

import dataclasses
import logging

from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.drift_history import HistoryRow, history_rows, load_history
from mlbatch.artifacts.evaluation import load_evaluation
from mlbatch.artifacts.monitor import load_monitor
from pipelines.report import svg
from pipelines.report.blocks import Section, Svg, Text, absent, table
from pipelines.report.periods import data_read_blocks, in_order, step_periods
from pipelines.report.run import Run, Step

LOGGER = logging.getLogger(__name__)
MODES = {"skew": "vs training", "drift": "vs previous"}
GROUPS = (("features", ("raw", "transformed")), ("label and prediction", ("label", "prediction")),
          ("attribution", ("attribution",)))
QUALITY = ("auc", "logloss", "rmse", "mae")


def _own(step: Step, mon) -> tuple[str, str]:
    """(period, mode) of the rows this monitor step added itself."""
    return str(step.manifest.body.get("period") or ""), mon.drift["mode"]


def _step_rows(step: Step) -> tuple[list[HistoryRow], tuple[str, str]]:
    mon = load_monitor(step.uri)
    own = _own(step, mon)
    try:
        return load_history(step.uri), own
    except ArtifactError as e:  # written before the history existed: its own rows only
        LOGGER.info("%s: %s; its drift.json stands in", step.name, e)
        return history_rows(mon.drift, period=own[0], run=mon.root), own


def history(run: Run) -> tuple[list[HistoryRow], list[str], list[str]]:
    """(rows relabelled with the report's periods, periods in order, problems)."""
    labels = step_periods(run)
    loaded, problems = [], []
    for step in run.of_type("monitor"):
        try:
            loaded.append((step, *_step_rows(step)))
        except ArtifactError as e:
            problems.append(f"{step.name}: {e}")
    owned = {own: step for step, _, own in loaded}
    out, seen = [], set()
    for step, rows, own in loaded:
        for r in rows:
            key = (r.period, r.mode)
            if key == own:
                r = dataclasses.replace(r, period=labels[step.name])
            elif key in owned:  # another step of this run wrote it: taken from there
                continue
            if (r.period, r.mode, r.stage, r.name) not in seen:
                seen.add((r.period, r.mode, r.stage, r.name))
                out.append(r)
    return out, in_order([r.period for r in out]), problems


def effective(r: HistoryRow) -> float:
    """The bound a distance must pass to breach: the threshold or the null's 99th
    percentile, whichever is larger (docs/monitoring.md)."""
    return max(r.threshold, r.null_p99)


@dataclasses.dataclass(frozen=True)
class Timeline:
    stage: str
    name: str
    metric: str
    rows: tuple[HistoryRow, ...]

    @property
    def breached(self) -> list[str]:
        return in_order([r.period for r in self.rows if r.verdict == "breach"])

    @property
    def max_distance(self) -> float:
        return max(r.distance for r in self.rows)

    def chart(self, periods: list[str]) -> str:
        series = []
        for mode in [m for m in MODES if any(r.mode == m for r in self.rows)]:
            at = {r.period: r for r in self.rows if r.mode == mode}
            series.append(svg.Series(MODES[mode], tuple(
                at[p].distance if p in at else None for p in periods), breach=tuple(
                p in at and at[p].verdict == "breach" for p in periods)))
            series.append(svg.Series("threshold" + ("" if mode == "skew" else " prev."), tuple(
                effective(at[p]) if p in at else None for p in periods), dashed=True))
        title = f"{self.stage}/{self.name} ({self.metric})"
        return svg.line_chart(("BREACH " if self.breached else "") + title, periods, series,
                              alert=bool(self.breached))


def timelines(rows: list[HistoryRow]) -> list[Timeline]:
    """One per (stage, name): breached ones first, then by their largest distance."""
    by: dict[tuple[str, str], list[HistoryRow]] = {}
    for r in rows:
        by.setdefault((r.stage, r.name), []).append(r)
    out = [Timeline(s, n, rs[0].metric, tuple(rs)) for (s, n), rs in by.items()]
    return sorted(out, key=lambda t: (not t.breached, -t.max_distance, t.stage, t.name))


def _slug(t: Timeline) -> str:
    return "".join(c if c.isalnum() else "-" for c in f"drift-{t.stage}-{t.name}")


def _last(rows: list[HistoryRow], periods: list[str]) -> dict[tuple, HistoryRow]:
    """(stage, name, mode) -> its row in the last period, where it has one."""
    return {(r.stage, r.name, r.mode): r for r in rows if r.period == periods[-1]}


def drift_blocks(rows: list[HistoryRow], periods: list[str]) -> list:
    lines, last = timelines(rows), _last(rows, periods)

    def at(t: Timeline, mode: str, field) -> float | None:
        r = last.get((t.stage, t.name, mode))
        return field(r) if r else None
    blocks = [table(["feature", "stage", "metric", "periods breached", "max distance",
                     f"{periods[-1]} vs training", "threshold", f"{periods[-1]} vs previous",
                     "threshold (previous)"],
                    [[t.name, t.stage, t.metric, ", ".join(t.breached) or "none",
                      t.max_distance, *[at(t, mode, f) for mode in MODES
                                        for f in (lambda r: r.distance, effective)]]
                     for t in lines], "Drift over the periods "
                    f"({', '.join(periods)}): breached first, then by largest distance; "
                    "thresholds are the larger of the configured one and the null's 99th "
                    "percentile")]
    for title, stages in GROUPS:
        group = [t for t in lines if t.stage in stages]
        if not group:
            continue
        blocks.append(Text(f"Drift timeline, {title}: distance per period (vs training and "
                           "vs the previous period) with its threshold (dashed: the larger "
                           "of the configured threshold and the null's 99th percentile); "
                           "red dots breach."))
        blocks += [Svg(_slug(t), t.chart(periods), f"drift timeline of {t.stage}/{t.name}",
                       "") for t in group]
    return blocks


def _evaluations(run: Run) -> tuple[list[tuple[Step, object]], list[str]]:
    out, problems = [], []
    for step in run.of_type("evaluation"):
        try:
            out.append((step, load_evaluation(step.uri)))
        except ArtifactError as e:
            problems.append(f"{step.name}: {e}")
    return out, problems


def out_of_time_blocks(run: Run) -> tuple[list, list[str]]:
    """The out-of-time metrics per period beside the eval-split figures at training time:
    a table and one chart per metric."""
    evals, problems = _evaluations(run)
    if not evals:
        return [], problems
    periods = step_periods(run)
    order = in_order([periods[s.name] for s, _ in evals])
    evals = sorted(evals, key=lambda e: order.index(periods[e[0].name]))
    names = [k for k in QUALITY if any(k in m.metrics for _, m in evals)]
    rows = [[periods[s.name], s.name, m.metrics.get("rows_joined"),
             *[v for k in names for v in (m.metrics.get(k), m.metrics.get(f"eval_split_{k}"))]]
            for s, m in evals]
    blocks = [table(["period", "step", "rows joined",
                     *[c for k in names for c in (f"{k.upper() if k == 'auc' else k}, "
                                                  "out-of-time", f"{k} eval split (training)")]],
                    rows, "Out-of-time metrics: each period's predictions against the labels "
                    "that arrived later, beside the model's eval-split figure at training time")]
    labels = [r[0] for r in rows]
    for k in names:
        series = [svg.Series(f"{k} out-of-time", tuple(m.metrics.get(k) for _, m in evals)),
                  svg.Series("eval split", tuple(m.metrics.get(f"eval_split_{k}")
                                                 for _, m in evals), dashed=True)]
        blocks.append(Svg(f"out-of-time-{k}", svg.line_chart(f"{k} per period (out-of-time)",
                                                             labels, series),
                          f"out-of-time {k} per period", ""))
    return blocks, problems


def timeline_section(run: Run) -> Section:
    """Which data each step read, the drift timeline and the out-of-time metrics."""
    rows, periods, problems = history(run)
    oot, more = out_of_time_blocks(run)
    blocks = [Text(p, "alert") for p in problems + more] + data_read_blocks(run)
    if rows:
        blocks += drift_blocks(rows, periods)
    blocks += oot
    if not blocks:
        return absent("timeline", "Over time", "no feature, scoring, monitoring or "
                      "evaluation step")
    shown = tuple(s.name for s in run.steps if s.type in ("monitor", "evaluation"))
    return Section("timeline", "Over time", tuple(blocks), shown=shown)
