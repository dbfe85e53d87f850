"""The training loop over a worker group: epochs, evaluation, early stopping, checkpoints.

It drives the workers (``call(method, *args)`` on all ranks at once) and hands what
comes back to a sink: the CLI's ``outputs.RunOutputs`` (files) or Tune's reporter.
Everything the loop itself keeps (early-stopping state, curves) travels inside each
checkpoint's meta, so a resumed run continues exactly where the checkpoint was taken.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Protocol

from ray_jobs.jax.config import JaxConfig
from mlbatch.errors import JobError

log = logging.getLogger(__name__)


class DivergedError(RuntimeError, JobError):
    """The loss stopped being a finite number (exit 1, naming the epoch and step)."""


def check_finite(epoch: int, result: dict[str, Any]) -> None:
    """Raises DivergedError at the first non-finite train loss of a ``train_steps`` result."""
    for i, v in enumerate(result["metrics"].get("loss", [])):
        if not math.isfinite(v):
            raise DivergedError(
                f"epoch {epoch}: the train loss is {v} at step {result['first_step'] + i + 1}: "
                f"training diverged (lower learning_rate, or set grad_clip_norm)")


def check_eval(epoch: int, ev: dict[str, Any], metric: str = "eval_loss") -> None:
    loss = ev.get(metric)
    if loss is None or not math.isfinite(loss):
        raise DivergedError(f"epoch {epoch}: the eval loss ({metric}) is {loss}: the model's "
                            f"predictions are not finite (training diverged)")


class Group(Protocol):
    def call(self, method: str, *args) -> list[Any]: ...


class Sink(Protocol):
    def on_start(self, step: int) -> None: ...
    def on_train(self, result: dict[str, Any], curve: list[tuple[int, float]]) -> None: ...
    def on_epoch(self, record: dict[str, Any], blob: bytes, improved: bool) -> None: ...
    def on_checkpoint(self, step: int, blob: bytes) -> None: ...
    def on_end(self, summary: dict[str, Any]) -> None: ...


@dataclasses.dataclass
class EarlyStopping:
    patience: int
    min_delta: float
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, epoch: int, value: float) -> bool:
        """Records an epoch's eval loss; True when it is the best so far."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stopped(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience


@dataclasses.dataclass
class History:
    """Loss curve (means over windows of log_every_steps) and per-epoch records."""
    curve: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pending: tuple[float, int] = (0.0, 0)  # running (sum, count) of the open window

    def add(self, first_step: int, losses: list[float], every: int) -> list[tuple[int, float]]:
        new = []
        total, count = self.pending
        for i, v in enumerate(losses):
            total, count = total + v, count + 1
            step = first_step + i + 1
            if step % every == 0:
                new.append((step, total / count))
                total, count = 0.0, 0
        self.pending = (total, count)
        self.curve.extend(new)
        return new


def fit(group: Group, config: JaxConfig, sink: Sink, resume: bytes | None = None) -> dict:
    """Trains to the configured epochs (or early stop); returns the run summary."""
    stopper, history = EarlyStopping(config.patience, config.min_delta), History()
    if resume is not None:
        meta = group.call("restore", resume)[0]
        loop = meta["loop"]
        stopper = EarlyStopping(**loop["early_stopping"])
        history = History(curve=[tuple(c) for c in loop["curve"]], epochs=loop["epochs"],
                          pending=tuple(loop["pending"]))
        log.info("resumed from step %d (epoch %d, step %d in epoch)",
                 meta["step"], meta["epoch"], meta["step_in_epoch"])
    info = group.call("describe")[0]
    sink.on_start(info["step"])
    epoch, chunk = info["epoch"], config.checkpoint_every_steps or info["steps_per_epoch"]
    window = [0.0, 0]  # seconds, examples in the current epoch

    def loop_meta() -> dict[str, Any]:
        return {"early_stopping": dataclasses.asdict(stopper), "curve": history.curve,
                "epochs": history.epochs, "pending": list(history.pending)}

    while epoch < config.epochs and not stopper.stopped:
        r = group.call("train_steps", chunk)[0]
        check_finite(epoch, r)
        window[0] += r["seconds"]
        window[1] += r["examples"]
        sink.on_train(r, history.add(r["first_step"], r["metrics"].get("loss", []),
                                     config.log_every_steps))
        if not r["epoch_done"]:
            sink.on_checkpoint(r["step"], group.call("snapshot", loop_meta())[0])
            continue
        ev = group.call("evaluate")[0]
        check_eval(epoch, ev, config.early_stopping_metric)
        improved = stopper.update(epoch, ev[config.early_stopping_metric])
        record = {"epoch": epoch, "step": r["step"], **ev,
                  "examples_per_s": window[1] / window[0] if window[0] else None}
        history.epochs.append(record)
        log.info("epoch %d: %s", epoch, {k: round(v, 5) if isinstance(v, float) else v
                                         for k, v in record.items()})
        sink.on_epoch(record, group.call("snapshot", loop_meta())[0], improved)
        epoch, window = epoch + 1, [0.0, 0]
    best = next((e for e in history.epochs if e["epoch"] == stopper.best_epoch), {})
    summary = {"best_epoch": stopper.best_epoch, "best": best,
               "last": history.epochs[-1] if history.epochs else {},
               "epochs_run": len(history.epochs), "stopped_early": stopper.stopped,
               "num_devices": info["num_devices"], "num_processes": info["num_processes"],
               "backend": info["backend"], "coordinator": info["coordinator"],
               "history": history.epochs, "curve": history.curve}
    sink.on_end(summary)
    return summary
