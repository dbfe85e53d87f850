"""What a CLI run leaves in ``--output``::

    config.json            the resolved config
    checkpoints/ckpt-<step>.npz   full train state + data position (resume from the newest)
    model/params.npz       parameters of the best epoch (by eval loss) + their description
    model/model.json       feature layout, task, sizes (how to read params.npz)
    metrics.json           eval metrics of the best and last epoch, per-epoch history
    curves.png             train loss per step window, eval loss (and AUC) per epoch
    tensorboard/           the same curves as TensorBoard events
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ray_jobs.jax import checkpoint
from ray_jobs.jax.config import JaxConfig

log = logging.getLogger(__name__)


def export_model(blob: bytes, out_dir: Path) -> Path:
    """Writes ``params.npz`` (params only) and ``model.json`` from checkpoint bytes."""
    arrays, meta = checkpoint.decode(blob)
    params = {k: v for k, v in arrays.items() if k.startswith("params/")}
    desc = {**meta["model"], "step": meta["step"], "epoch": meta["epoch"],
            "config": meta["config"]}
    path = Path(out_dir) / "params.npz"
    checkpoint.write_atomic(path, checkpoint.encode(params, desc))
    checkpoint.write_atomic(Path(out_dir) / "model.json",
                            json.dumps(desc, indent=2).encode())
    return path


class RunOutputs:
    """The loop's sink for a CLI run: checkpoints, best model, metrics, curves."""

    def __init__(self, root: str | Path, config: JaxConfig):
        self.root, self.config = Path(root), config
        self.root.mkdir(parents=True, exist_ok=True)
        self.checkpoints = checkpoint.CheckpointDir(self.root / "checkpoints",
                                                    config.keep_checkpoints)
        self._tb = None

    def latest_checkpoint(self) -> bytes | None:
        return self.checkpoints.latest()

    # --- sink ----------------------------------------------------------------------------
    def on_start(self, step: int) -> None:
        from tensorboardX import SummaryWriter
        checkpoint.write_atomic(self.root / "config.json",
                                json.dumps(self.config.to_dict(), indent=2).encode())
        # purge_step drops events a killed run wrote after the checkpoint we resume from
        self._tb = SummaryWriter(str(self.root / "tensorboard"), purge_step=step or None)

    def on_train(self, result: dict[str, Any], curve: list[tuple[int, float]]) -> None:
        for step, value in curve:
            self._tb.add_scalar("train/loss", value, step)
        if result["seconds"] > 0:
            self._tb.add_scalar("train/examples_per_s", result["examples"] / result["seconds"],
                                result["step"])

    def on_epoch(self, record: dict[str, Any], blob: bytes, improved: bool) -> None:
        self.checkpoints.save(record["step"], blob)
        for k, v in record.items():
            if k.startswith("eval_") and isinstance(v, float):
                self._tb.add_scalar(f"eval/{k[5:]}", v, record["step"])
        self._tb.flush()
        if improved:
            export_model(blob, self.root / "model")

    def on_checkpoint(self, step: int, blob: bytes) -> None:
        self.checkpoints.save(step, blob)

    def on_end(self, summary: dict[str, Any]) -> None:
        doc = {k: v for k, v in summary.items() if k != "curve"}
        doc.update({k: v for k, v in summary["best"].items() if k.startswith("eval_")})
        checkpoint.write_atomic(self.root / "metrics.json",
                                json.dumps(doc, indent=2, default=_jsonable).encode())
        plot_curves(summary, self.root / "curves.png")
        if self._tb is not None:
            self._tb.close()
        log.info("wrote %s", self.root / "metrics.json")


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serializable: {type(x)}")


def plot_curves(summary: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = summary["history"]
    extra = "eval_auc" if epochs and "eval_auc" in epochs[0] else "eval_rmse"
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    if summary["curve"]:
        s, v = zip(*summary["curve"])
        axes[0].plot(s, v)
    axes[0].set(title="train loss (incl. L2)", xlabel="step")
    xs = [e["step"] for e in epochs]
    axes[1].plot(xs, [e["eval_loss"] for e in epochs], marker="o")
    axes[1].set(title="eval loss", xlabel="step")
    axes[2].plot(xs, [e.get(extra) for e in epochs], marker="o")
    axes[2].set(title=extra.replace("_", " "), xlabel="step")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
