"""The JAX job's eval record: ``mlbatch.metrics`` on the eval predictions, ``eval_`` names."""
from __future__ import annotations

from typing import Any

import numpy as np

from mlbatch.labels import inverse_label
from mlbatch.metrics import confusion_matrix, task_metrics


def eval_metrics(task: str, *, pred: np.ndarray, label: np.ndarray, weight: np.ndarray,
                 label_transform: dict | None = None,
                 classes: tuple[str, ...] = ()) -> dict[str, Any]:
    """``eval_loss`` (logloss or RMSE: what early stopping and Tune use, the same as the
    XGBoost job's) plus the task's metrics, over the rows of weight > 0 (padding has 0).
    Regression metrics are in the label's own units (``label_transform`` inverted on
    predictions and labels). A multiclass record adds ``confusion_matrix``
    (``mlbatch.metrics.confusion_matrix`` of ``classes``)."""
    keep = np.asarray(weight) > 0
    pred, label = np.asarray(pred)[keep], np.asarray(label)[keep]
    if task == "regression":
        pred, label = inverse_label(pred, label_transform), inverse_label(label, label_transform)
    out = task_metrics(task, label, pred)
    record = {"eval_loss": out.pop("eval_loss"), "eval_examples": int(keep.sum()),
              **{f"eval_{k}": v for k, v in out.items()}}
    if task == "multiclass_classification":
        record["confusion_matrix"] = confusion_matrix(label, pred, classes)
    return record
