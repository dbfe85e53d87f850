"""Evaluation metrics on host arrays (exact, tie-aware AUC; logloss; RMSE, MAE)."""
from __future__ import annotations

import math

import numpy as np

from mlbatch.labels import inverse_label


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels) > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of each tie group's last member
    r = (ends - (counts - 1) / 2.0)[inverse]  # tie groups get their mean rank
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def eval_metrics(task: str, loss: float, *, pred: np.ndarray, label: np.ndarray,
                 weight: np.ndarray, label_transform: dict | None = None) -> dict[str, float]:
    """``eval_loss`` (the training loss: what early stopping and Tune use; for regression
    the mean squared error of the standardized label) plus the task's usual metrics:
    AUC and logloss, or RMSE and MAE in the label's own units (``label_transform``
    inverted on predictions and labels)."""
    keep = weight > 0
    out = {"eval_loss": float(loss), "eval_examples": int(keep.sum())}
    if task == "binary_classification":
        out["eval_logloss"] = float(loss)
        out["eval_auc"] = auc(pred[keep], label[keep])
    else:
        err = (inverse_label(pred[keep], label_transform)
               - inverse_label(label[keep], label_transform))
        out["eval_rmse"] = math.sqrt(float(np.mean(err * err)))
        out["eval_mae"] = float(np.mean(np.abs(err)))
    return out
