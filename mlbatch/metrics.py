"""Evaluation metrics on host arrays, shared by every trainer (pure numpy, exact).

One name, one meaning across jobs: every function takes ``(labels, scores)`` in that
order, and ``eval_loss`` is the task's loss on the eval split -- logloss for binary
classification, multi-class logloss for multiclass classification (scores are then
``[n, K]`` class probabilities, labels class indices), RMSE for regression -- in the
XGBoost job, the JAX job and so in Tune's results tables. Metrics are computed from the
predictions on every eval row (a distributed trainer's own aggregated metrics are not
exactly those of the whole split).
"""
from __future__ import annotations

import math

import numpy as np

TASKS = ("binary_classification", "regression", "multiclass_classification")
# The names task_metrics returns beside eval_loss, per task (Tune's --metric checks them).
METRIC_NAMES = {"binary_classification": ("auc", "logloss", "accuracy"),
                "multiclass_classification": ("logloss", "accuracy", "auc_ovr_macro",
                                              "auc_ovr_weighted"),
                "regression": ("rmse", "mae")}
LOGLOSS_EPS = 1e-15


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC with ties counted half (Mann-Whitney U with mean ranks); NaN when only one
    class is present. A label is positive when it is > 0.5."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos = np.asarray(labels).reshape(-1) > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of each tie group's last member
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # a tie group gets its mean rank
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [eps, 1 - eps])."""
    p = np.clip(np.asarray(scores, dtype=np.float64), LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Share of rows where (score > 0.5) equals (label > 0.5); XGBoost's ``error`` is
    1 - this."""
    return float(np.mean((np.asarray(scores) > 0.5) == (np.asarray(labels) > 0.5)))


def rmse(labels: np.ndarray, scores: np.ndarray) -> float:
    d = np.asarray(scores, dtype=np.float64) - np.asarray(labels, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


def mae(labels: np.ndarray, scores: np.ndarray) -> float:
    d = np.asarray(scores, dtype=np.float64) - np.asarray(labels, dtype=np.float64)
    return float(np.mean(np.abs(d)))


def _class_probs(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"multiclass scores must be [n, K] for {y.shape[0]} labels, got "
                         f"shape {p.shape}")
    k = np.rint(y).astype(np.int64)
    if np.any(k != y) or np.any(k < 0) or np.any(k >= p.shape[1]):
        raise ValueError(f"multiclass labels must be class indices in [0, {p.shape[1]})")
    return k, p


def multi_logloss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean of -log(probability of the true class), clipped to [eps, 1 - eps]."""
    k, p = _class_probs(labels, scores)
    true = np.clip(p[np.arange(k.shape[0]), k], LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    return float(-np.mean(np.log(true)))


def multi_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Share of rows whose arg-max class (the first on ties) is the label; XGBoost's
    ``merror`` is 1 - this."""
    k, p = _class_probs(labels, scores)
    return float(np.mean(np.argmax(p, axis=1) == k))


def auc_ovr(labels: np.ndarray, scores: np.ndarray, average: str) -> float:
    """One-vs-rest ROC AUC per class (:func:`auc` of "this class" against the rest),
    averaged ``macro`` (equal weights) or ``weighted`` (by the class's rows). A class with
    no rows in ``labels`` (its AUC undefined) is left out of both; NaN if none remains."""
    k, p = _class_probs(labels, scores)
    if average not in ("macro", "weighted"):
        raise ValueError(f"average {average!r}: expected 'macro' or 'weighted'")
    aucs, support = [], []
    for c in range(p.shape[1]):
        value = auc(k == c, p[:, c])
        if not math.isnan(value):
            aucs.append(value)
            support.append(int(np.sum(k == c)))
    if not aucs:
        return math.nan
    weights = np.ones(len(aucs)) if average == "macro" else np.asarray(support, np.float64)
    return float(np.dot(aucs, weights) / weights.sum())


def confusion_matrix(labels: np.ndarray, scores: np.ndarray,
                     classes: tuple[str, ...] | list[str]) -> dict[str, list]:
    """Counts of (true class, predicted class) over the rows, the prediction being the
    arg-max class (the first on ties): ``{"classes": [names], "counts": [[int]]}``, row i
    = true class i, column j = predicted class j (K x K, every row and column present)."""
    k, p = _class_probs(labels, scores)
    if p.shape[1] != len(classes):
        raise ValueError(f"{p.shape[1]} probability columns for {len(classes)} classes "
                         f"{list(classes)}")
    counts = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(counts, (k, np.argmax(p, axis=1)), 1)
    return {"classes": [str(c) for c in classes], "counts": counts.tolist()}


def eval_loss(task: str, labels: np.ndarray, scores: np.ndarray) -> float:
    """The task's loss: logloss (binary classification), multi-class logloss (multiclass)
    or RMSE (regression)."""
    if task == "binary_classification":
        return logloss(labels, scores)
    if task == "multiclass_classification":
        return multi_logloss(labels, scores)
    if task == "regression":
        return rmse(labels, scores)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def task_metrics(task: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """``eval_loss`` plus the metrics a user of this task reads: classification AUC,
    logloss, accuracy; multiclass logloss, accuracy, one-vs-rest AUC (macro and
    weighted); regression RMSE, MAE. NaN (undefined, e.g. AUC of one class)
    becomes None so the result is valid JSON."""
    if task == "binary_classification":
        out = {"auc": auc(labels, scores), "logloss": logloss(labels, scores),
               "accuracy": accuracy(labels, scores)}
    elif task == "multiclass_classification":
        out = {"logloss": multi_logloss(labels, scores),
               "accuracy": multi_accuracy(labels, scores),
               "auc_ovr_macro": auc_ovr(labels, scores, "macro"),
               "auc_ovr_weighted": auc_ovr(labels, scores, "weighted")}
    elif task == "regression":
        out = {"rmse": rmse(labels, scores), "mae": mae(labels, scores)}
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    out = {"eval_loss": eval_loss(task, labels, scores), **out}
    return {k: (None if math.isnan(v) else v) for k, v in out.items()}


def labelled_quality(task: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The quality of stored predictions on the rows that carry a label, in label units:
    AUC and logloss (binary classification), logloss, accuracy and one-vs-rest AUC
    (multiclass: ``scores`` [n, K], labels class indices; an undefined AUC is None) or RMSE
    and MAE (regression); {} when no row is labelled. Scoring and the late-label
    evaluation report these."""
    if not len(labels):
        return {}
    if task == "multiclass_classification":
        out = task_metrics(task, labels, scores)
        out.pop("eval_loss")
        return out
    if task == "binary_classification":
        return {"auc": auc(labels, scores), "logloss": logloss(labels, scores)}
    return {"rmse": rmse(labels, scores), "mae": mae(labels, scores)}
