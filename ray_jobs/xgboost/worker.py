"""The per-worker training function of the XGBoost job (Ray Train V2 ``XGBoostTrainer``).

Every worker runs :func:`train_fn_per_worker` inside XGBoost's collective (Ray Train's
XGBoost backend starts the tracker and sets it up around the function): it reads its own
shard of the feature Parquet (``data.worker_dmatrix``: a ``QuantileDMatrix`` for
``tree_method=hist``, sketched as it is built, the same bins and trees as a ``DMatrix``),
resumes from the run's latest checkpoint when there is one, and trains with plain
``xgboost.train``. With ``TrainSpec.timeline`` set (the benchmark) each rank also writes
when its steps happened (:class:`Timeline`).

:class:`RoundsCallback` does the bookkeeping every rank does alike (every rank sees the
same allreduced metrics, so their decisions agree): the per-round history, the best round,
early stopping, and one ``ray.train.report`` every ``report_every`` rounds and at the
last round -- metrics and a checkpoint together, the checkpoint (model + :class:`RunState`)
from rank 0 only. The history travels in the checkpoint, so it survives a worker-group
restart. A report is a collective (all ranks call it) and costs a barrier plus the
checkpoint upload, and blocks while the previous one is still waiting for the controller
(docs/xgboost.md, "What a report costs"); hence every k rounds, not every round.

Every round also evaluates ``label_loss`` (:func:`label_loss_metric`): ``eval_loss`` in the
label's own units (``mlbatch.metrics``), summed over every worker's rows by an allreduce,
so its value is the whole split's, like XGBoost's own metrics; early stopping uses it by
default (``--early-stopping-metric``).

Rounds are numbered by ``model.num_boosted_rounds()``, which stays right when training
continues from a checkpoint (XGBoost restarts ``epoch`` at 0 there).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from xgboost.callback import TrainingCallback

MODEL_FILE = "model.json"
STATE_FILE = "state.json"


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """What a worker needs; travels as a dict (``train_loop_config``), rebuilt first thing."""
    features: str
    params: dict
    num_boost_round: int
    early_stopping_rounds: int | None
    report_every: int
    metric: str  # eval metric for the best round / early stopping, e.g. "eval-logloss"
    mode: str
    alias: str | None = None  # the metric is also reported under this name (Tune)
    task: str = "regression"  # the label task and transform: label_loss in label units
    label_transform: dict | None = None
    objective_metric: str = "eval-rmse"  # XGBoost's own loss in the model's space
    callbacks: Sequence = ()  # extra XGBoost callbacks (tests inject faults with these)
    timeline: str | None = None  # a local directory: each rank writes its Timeline there

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass
class RunState:
    """Progress of one training run: what a checkpoint holds beside the model."""
    round: int = 0
    best_round: int = 0
    best_value: float | None = None
    history: list = dataclasses.field(default_factory=list)  # {"round", "metrics"} per round

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunState:
        return cls(**json.loads(text))


def latest_metrics(evals_log: dict) -> dict[str, float]:
    """``{"train-auc": 0.8, "eval-logloss": 0.4, ...}`` for the round just finished."""
    return {f"{data}-{name}": float(values[-1])
            for data, metrics in evals_log.items() for name, values in metrics.items()}


def read_checkpoint(path: str | Path):
    """(booster, RunState) of a checkpoint directory (local)."""
    import xgboost as xgb
    booster = xgb.Booster(model_file=str(Path(path, MODEL_FILE)))
    return booster, RunState.from_json(Path(path, STATE_FILE).read_text())


class Timeline:
    """Wall-clock marks (``time.time()``) of one worker's steps, written to
    ``<directory>/rank<k>.json`` when the function ends (``TrainSpec.timeline``; the
    benchmark's start-up breakdown, docs/xgboost.md). ``process_start`` is when the
    worker's process was created (``/proc``), so the first gap is process start + imports.
    ``cpu_s_at`` holds the process's CPU seconds (all threads) at each mark."""

    def __init__(self, directory: str | None):
        self.directory, self.marks, self.cpu = directory, {}, {}
        if directory:
            self.marks["process_start"] = process_start()
            self.mark("fn_start")

    def mark(self, name: str, once: bool = False) -> None:
        if self.directory and not (once and name in self.marks):
            self.marks[name] = time.time()
            self.cpu[name] = round(time.process_time(), 3)

    def add(self, name: str, seconds: float) -> None:
        if self.directory:
            self.marks[name] = self.marks.get(name, 0.0) + seconds

    def write(self, rank: int) -> None:
        if self.directory:
            self.mark("fn_end")
            Path(self.directory, f"rank{rank}.json").write_text(
                json.dumps({**self.marks, "cpu_s_at": self.cpu}))


def process_start(pid: int | str = "self") -> float:
    """Creation time of a process (seconds since the epoch) from /proc (Linux): its start
    in clock ticks after boot against the boot-time clock now (1/100 s resolution; the
    boot time /proc/stat gives is whole seconds)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    now, since_boot = time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)
    return now - since_boot + ticks / os.sysconf("SC_CLK_TCK")


LABEL_LOSS = "label_loss"  # the per-round name of eval_loss (history: "eval-label_loss")


def label_loss_metric(task: str, label_transform: dict | None,
                      timeline: Timeline | None = None):
    """XGBoost ``custom_metric``: the task's loss in label units (the label transform
    inverted on labels and predictions; XGBoost hands over transformed predictions:
    probabilities, not margins). Each worker sums its own rows' losses and the sums are
    allreduced, so every rank gets the loss of the whole split (``mlbatch.metrics``).
    ``timeline`` adds up the seconds of this worker's own part (``label_loss_s``)."""
    from xgboost import collective

    from mlbatch.labels import inverse_label
    from mlbatch.metrics import loss_from_sums, loss_sums

    timeline = timeline or Timeline(None)

    def label_loss(predt, dmatrix) -> tuple[str, float]:
        t = time.time()
        labels = dmatrix.get_label()
        if task == "regression":
            labels, predt = (inverse_label(labels, label_transform),
                             inverse_label(predt, label_transform))
        total, rows = loss_sums(task, labels, predt)
        timeline.add("label_loss_s", time.time() - t)
        total, rows = collective.allreduce(np.array([total, float(rows)]), collective.Op.SUM)
        return LABEL_LOSS, loss_from_sums(task, float(total), int(rows))

    return label_loss


class RoundsCallback(TrainingCallback):
    """History, best round, early stopping and the reports (module docstring)."""

    def __init__(self, spec: TrainSpec, state: RunState, rank: int,
                 timeline: Timeline | None = None):
        self._spec, self._state, self._rank = spec, state, rank
        self._timeline = timeline or Timeline(None)
        self._sign = 1.0 if spec.mode == "min" else -1.0

    def after_iteration(self, model, epoch: int, evals_log: dict) -> bool:
        st, spec = self._state, self._spec
        self._timeline.mark("first_round_end", once=True)
        metrics = latest_metrics(evals_log)
        st.round = model.num_boosted_rounds()
        st.history.append({"round": st.round, "metrics": metrics})
        value = metrics[spec.metric]
        if st.best_value is None or self._sign * value < self._sign * st.best_value:
            st.best_round, st.best_value = st.round, value
        stop = bool(spec.early_stopping_rounds
                    and st.round - st.best_round >= spec.early_stopping_rounds)
        if stop or st.round % spec.report_every == 0 or st.round >= spec.num_boost_round:
            t = time.time()
            self._report(model, metrics, value)
            self._timeline.add("reports_s", time.time() - t)
        self._timeline.mark("last_round_end")
        return stop

    def _report(self, model, metrics: dict, value: float) -> None:
        import ray.train

        st = self._state
        metrics = {**metrics, "round": st.round, "best_round": st.best_round,
                   "best_value": st.best_value,
                   "eval_loss": metrics.get(f"eval-{LABEL_LOSS}"),
                   "objective_loss": metrics.get(self._spec.objective_metric)}
        if self._spec.alias and self._spec.alias not in metrics:
            metrics[self._spec.alias] = value
        if self._rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            model.save_model(str(Path(d, MODEL_FILE)))
            Path(d, STATE_FILE).write_text(st.to_json())
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def train_fn_per_worker(config: dict) -> None:
    """Ray Train's per-worker function: shard -> resume -> ``xgboost.train`` -> reports."""
    import ray.train
    import xgboost as xgb

    from mlbatch.artifacts.features import load_feature_set
    from ray_jobs.xgboost import data

    spec = TrainSpec(**config)
    timeline = Timeline(spec.timeline)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    fs = load_feature_set(spec.features, check_columns=False)
    nthread, max_bin = int(spec.params.get("nthread", -1)), quantile_bins(spec.params)
    dtrain = data.worker_dmatrix(fs, "train", rank, world, nthread, max_bin=max_bin)
    timeline.mark("train_matrix")
    deval = data.worker_dmatrix(fs, "eval", rank, world, nthread, max_bin=max_bin,
                                ref=dtrain if max_bin else None)
    timeline.mark("eval_matrix")
    booster, state = None, RunState()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # a restarted worker group (or a resumed Tune trial)
        with checkpoint.as_directory() as d:
            booster, state = read_checkpoint(d)
    if not _finished(spec, state):
        xgb.train(spec.params, dtrain, spec.num_boost_round - state.round,
                  evals=[(dtrain, "train"), (deval, "eval")], xgb_model=booster,
                  custom_metric=label_loss_metric(spec.task, spec.label_transform, timeline),
                  callbacks=[RoundsCallback(spec, state, rank, timeline), *spec.callbacks],
                  verbose_eval=False)
    timeline.write(rank)


def quantile_bins(params: dict) -> int | None:
    """``max_bin`` where the shards are read into ``QuantileDMatrix`` (``tree_method``
    hist, the default: XGBoost's own default of 256 bins unless set); None for approx,
    which needs a ``DMatrix``."""
    if params.get("tree_method", "hist") != "hist":
        return None
    return int(params.get("max_bin", 256))


def _finished(spec: TrainSpec, state: RunState) -> bool:
    if state.round >= spec.num_boost_round:
        return True
    return bool(spec.early_stopping_rounds and state.round
                and state.round - state.best_round >= spec.early_stopping_rounds)


def best_round(history: list[dict], metric: str, mode: str) -> int:
    """1-based round with the best value of ``metric`` (first one on ties)."""
    sign = 1.0 if mode == "min" else -1.0
    best, best_value = 0, math.inf
    for rec in history:
        value = sign * rec["metrics"][metric]
        if value < best_value:
            best, best_value = rec["round"], value
    if best == 0:
        raise ValueError(f"no round recorded metric {metric!r}")
    return best
