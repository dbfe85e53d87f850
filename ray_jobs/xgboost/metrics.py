"""Evaluation metrics computed from full predictions (pure numpy, exact).

XGBoost's own distributed ``auc`` is aggregated across workers and is not exactly the
AUC of the whole split, so the reported eval metrics are computed here from the
predictions of the saved model on every eval row.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

LOGLOSS_EPS = 1e-15


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC with ties counted half (Mann-Whitney); NaN when only one class is present."""
    y = np.asarray(y, dtype=np.float64)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(np.asarray(p, dtype=np.float64))
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Share of rows where (p > 0.5) equals the label (XGBoost's ``error`` is 1 - this)."""
    return float(np.mean((np.asarray(p) > 0.5) == (np.asarray(y) == 1)))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    d = np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(p, dtype=np.float64) - np.asarray(y, np.float64))))


def task_metrics(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """The metrics a user of this task reads: classification AUC/logloss/accuracy,
    regression RMSE/MAE. NaN (undefined) becomes None so the result is valid JSON."""
    if task == "binary_classification":
        out = {"auc": auc(y, p), "logloss": logloss(y, p), "accuracy": accuracy(y, p)}
    elif task == "regression":
        out = {"rmse": rmse(y, p), "mae": mae(y, p)}
    else:
        raise ValueError(f"unknown task {task!r}")
    return {k: (None if math.isnan(v) else v) for k, v in out.items()}
