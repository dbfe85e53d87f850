"""The JAX job's eval record: ``mlbatch.metrics`` on the eval predictions, ``eval_`` names."""
from __future__ import annotations

from typing import Any

import numpy as np

from mlbatch.labels import inverse_label
from mlbatch.metrics import confusion_matrix, split_losses, task_metrics


def eval_metrics(task: str, *, pred: np.ndarray, label: np.ndarray, weight: np.ndarray,
                 label_transform: dict | None = None,
                 classes: tuple[str, ...] = ()) -> dict[str, Any]:
    """``eval_loss`` (the task's loss in the label's own units: logloss, or RMSE with
    ``label_transform`` inverted on predictions and labels -- the XGBoost job's, Tune's),
    ``objective_loss`` (the same loss in the stored label's space, e.g. RMSE of log1p
    values; ``mlbatch.metrics.split_losses``) and the task's metrics in label units, over
    the rows of weight > 0 (padding has 0). A multiclass record adds ``confusion_matrix``
    (``mlbatch.metrics.confusion_matrix`` of ``classes``)."""
    keep = np.asarray(weight) > 0
    pred, label = np.asarray(pred)[keep], np.asarray(label)[keep]
    transform = label_transform if task == "regression" else None
    losses = split_losses(task, label, pred, transform)
    pred, label = inverse_label(pred, transform), inverse_label(label, transform)
    out = task_metrics(task, label, pred)
    out.pop("eval_loss")
    record = {"eval_loss": losses["eval_loss"], "objective_loss": losses["objective_loss"],
              "eval_examples": int(keep.sum()), **{f"eval_{k}": v for k, v in out.items()}}
    if task == "multiclass_classification":
        record["confusion_matrix"] = confusion_matrix(label, pred, classes)
    return record


def metric_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The metrics of an epoch record (``eval_*``, ``objective_loss`` and a multiclass
    ``confusion_matrix``): what metrics.json and the artifact's manifest carry."""
    return {k: v for k, v in record.items()
            if k.startswith("eval_") or k in ("objective_loss", "confusion_matrix")}
