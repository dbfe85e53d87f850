"""The Tune section: trials, the metric against each hyperparameter, the best trial."""
from __future__ import annotations

import logging

from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.tune_run import TuneRun, load_tune_run
from pipelines.report import figures
from pipelines.report.blocks import Figure, Section, Text, absent, short_digest, table
from pipelines.report.run import Run, Step

LOGGER = logging.getLogger(__name__)
MAX_TRIALS_SHOWN = 50
CONFIG = "config/"


def trial_rows(tune: TuneRun) -> tuple[list[str], list[list]]:
    rows = tune.trials().to_pylist()
    params = sorted({k for r in rows for k in r if k.startswith(CONFIG)})
    best_col = f"best_{tune.metric}"
    columns = ["trial", "status", "end reason", "iterations", tune.metric, best_col,
               *[p.removeprefix(CONFIG) for p in params]]
    out = [[r["trial_id"], r.get("status"), r.get("end_reason"), r.get("iterations"),
            r.get(tune.metric), r.get(best_col), *[r.get(p) for p in params]] for r in rows]
    return columns, out


def _scatter(step: Step, tune: TuneRun) -> Figure | None:
    rows = tune.trials().to_pylist()
    params = sorted({k for r in rows for k in r if k.startswith(CONFIG)})
    best_col = f"best_{tune.metric}"
    best_id = tune.best["trial_id"] if tune.best else None
    rows = [r for r in rows if r.get(best_col) is not None]
    if not rows or not params:
        return None
    panels = [(p.removeprefix(CONFIG), [r[p] for r in rows], [r[best_col] for r in rows])
              for p in params]
    png = figures.scatter_grid(panels, best_col,
                               highlight=lambda i: rows[i]["trial_id"] == best_id)
    return Figure(f"{step.name}-params", png, f"{tune.metric} against each hyperparameter",
                  f"{step.name}: each trial's {best_col} against each hyperparameter "
                  "(orange: the best trial)")


def _tune_blocks(step: Step, tune: TuneRun) -> list:
    columns, rows = trial_rows(tune)
    blocks = [Text(f"Step {step.name}: {tune.job} trials, metric {tune.metric} ({tune.mode}), "
                   f"{len(rows)} trials.")]
    best = tune.best
    if best:
        model = best.get("model") or {}
        blocks.append(table(["best trial", tune.metric, "iterations", "model", "model digest",
                             *[f"config {k}" for k in best["config"]]],
                            [[best["trial_id"], best["metric"], best.get("iterations"),
                              model.get("type"), short_digest(model.get("digest")),
                              *best["config"].values()]],
                            "The best trial and what it ran with"))
    else:
        blocks.append(Text(f"No trial reported {tune.metric}.", "alert"))
    stopped = [r for r in rows if r[2] == "scheduler_stopped"]
    errored = [r for r in rows if r[2] == "error"]
    blocks.append(Text(f"Stopped early by the scheduler: {len(stopped)} trial(s)"
                       + (f" ({', '.join(r[0] for r in stopped)})" if stopped else "")
                       + f"; ended in an error: {len(errored)}.",
                       "alert" if errored else "p"))
    blocks.append(table(columns, rows[:MAX_TRIALS_SHOWN], f"Trials of {step.name} (best first"
                        + (f", first {MAX_TRIALS_SHOWN}" if len(rows) > MAX_TRIALS_SHOWN
                           else "") + ")"))
    fig = _scatter(step, tune)
    if fig:
        blocks.append(fig)
    return blocks


def tune_section(run: Run) -> Section:
    steps = run.of_type("tune_run")
    if not steps:
        return absent("tune", "Tune", "no Tune step")
    blocks = []
    for step in steps:
        try:
            blocks += _tune_blocks(step, load_tune_run(step.uri))
        except ArtifactError as e:
            LOGGER.warning("tune step %s: %s", step.name, e)
            blocks.append(Text(f"{step.name}: {e}", "alert"))
    return Section("tune", "Tune", tuple(blocks), shown=tuple(s.name for s in steps))
