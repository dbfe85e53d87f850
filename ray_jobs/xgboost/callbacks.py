"""XGBoost callbacks that run inside the xgboost-ray training actors.

They only act on collective rank 0 (every rank sees the same allreduced metrics) and hand
their result to the driver process through ``xgboost_ray.session.put_queue``:

* a plain value is appended to ``additional_results["callback_returns"][rank]``,
  which xgboost-ray keeps across actor restarts -- :class:`HistoryCallback` records the
  per-round metrics there, so the learning curve survives a restart;
* a callable is *called* on the driver -- :class:`TuneReportCallback` sends a closure
  that calls ``ray.tune.report`` in the Tune trial (the process that owns the Tune
  session). This replaces xgboost-ray 0.1.19's own Tune integration, which imports
  ``ray.tune.integration.xgboost`` (removed from Ray) and so silently does nothing.

Rounds are numbered by ``model.num_boosted_rounds()``, which stays right when training
continues from a checkpoint (XGBoost restarts ``epoch`` at 0 there).
"""
from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from xgboost.callback import TrainingCallback

MODEL_FILE = "model.json"
STATE_FILE = "state.json"
HISTORY_KIND = "round_metrics"


def _is_rank_zero() -> bool:
    from xgboost_ray.session import get_rabit_rank
    return get_rabit_rank() == 0


def latest_metrics(evals_log: dict) -> dict[str, float]:
    """``{"train-auc": 0.8, "eval-logloss": 0.4, ...}`` for the round just finished."""
    return {f"{data}-{name}": float(values[-1])
            for data, metrics in evals_log.items() for name, values in metrics.items()}


class HistoryCallback(TrainingCallback):
    """Records every round's train/eval metrics on the driver (survives actor restarts)."""

    def after_iteration(self, model, epoch: int, evals_log: dict) -> bool:
        if _is_rank_zero():
            from xgboost_ray.session import put_queue
            put_queue({"kind": HISTORY_KIND, "round": model.num_boosted_rounds(),
                       "metrics": latest_metrics(evals_log)})
        return False


def collect_history(additional_results: dict) -> list[dict[str, Any]]:
    """Per-round records from :class:`HistoryCallback`, one per round (a round redone
    after an actor restart keeps its latest value), ordered by round."""
    by_round: dict[int, dict] = {}
    for per_rank in additional_results.get("callback_returns", []):
        for item in per_rank:
            if isinstance(item, dict) and item.get("kind") == HISTORY_KIND:
                by_round[item["round"]] = item
    return [by_round[r] for r in sorted(by_round)]


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


class TuneReportCallback(TrainingCallback):
    """One ``ray.tune.report(metrics, checkpoint=...)`` per boosting round.

    ``metric``/``mode`` name the eval metric Tune schedules on; it is also reported under
    ``alias`` (a task-independent name such as ``eval_loss``). A checkpoint (the model
    so far plus the best round seen) goes with every ``checkpoint_every``-th round's
    metrics and with the last round; ``best`` carries the best (round, value) of an
    earlier attempt when the trial resumes from a checkpoint.
    """

    def __init__(self, metric: str, mode: str, alias: str, num_boost_round: int,
                 checkpoint_every: int = 1, best: tuple[int, float] | None = None):
        self._metric, self._sign, self._alias = metric, (1.0 if mode == "min" else -1.0), alias
        self._num_boost_round = num_boost_round
        self._every = checkpoint_every
        self._best = best  # (round, value)

    def after_iteration(self, model, epoch: int, evals_log: dict) -> bool:
        if not _is_rank_zero():
            return False
        from xgboost_ray.session import put_queue
        metrics = latest_metrics(evals_log)
        rnd = model.num_boosted_rounds()
        value = metrics[self._metric]
        if self._best is None or self._sign * value < self._sign * self._best[1]:
            self._best = (rnd, value)
        metrics.update({self._alias: value, "round": rnd, "best_round": self._best[0]})
        raw = None
        if rnd % self._every == 0 or rnd >= self._num_boost_round:
            raw = bytes(model.save_raw("json"))
        state = {"round": rnd, "best_round": self._best[0], "best_value": self._best[1]}
        put_queue(functools.partial(report_round, metrics, raw, state))
        return False


def report_round(metrics: dict, model_raw: bytes | None, state: dict) -> None:
    """Runs in the Tune trial process (called from xgboost-ray's queue handling)."""
    from ray import tune
    if model_raw is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        Path(d, MODEL_FILE).write_bytes(model_raw)
        Path(d, STATE_FILE).write_text(json.dumps(state))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
