"""The JAX job's eval record: ``mlbatch.metrics`` on the eval predictions, ``eval_`` names."""
from __future__ import annotations

import numpy as np

from mlbatch.metrics import task_metrics


def eval_metrics(task: str, *, pred: np.ndarray, label: np.ndarray,
                 weight: np.ndarray) -> dict[str, float | int | None]:
    """``eval_loss`` (logloss or RMSE: what early stopping and Tune use, the same as the
    XGBoost job's) plus the task's metrics, over the rows of weight > 0 (padding has 0)."""
    keep = np.asarray(weight) > 0
    out = task_metrics(task, np.asarray(label)[keep], np.asarray(pred)[keep])
    return {"eval_loss": out.pop("eval_loss"), "eval_examples": int(keep.sum()),
            **{f"eval_{k}": v for k, v in out.items()}}
