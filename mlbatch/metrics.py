"""Evaluation metrics on host arrays, shared by every trainer (pure numpy, exact).

One name, one meaning across jobs: every function takes ``(labels, scores)`` in that
order, and ``eval_loss`` is the task's loss on the eval split -- logloss for binary
classification, multi-class logloss for multiclass classification (scores are then
``[n, K]`` class probabilities, labels class indices), RMSE for regression -- in the
label's own units (a log1p label's transform inverted: dollars), in the XGBoost job, the
JAX job, Tune's results tables, the registry and the report. The same loss in the space
the model is trained in (RMSE of log1p values) is ``objective_loss``
(:func:`split_losses`). Metrics are computed from the
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


# What early stopping (both trainers) may watch: eval_loss (label units, the default) or
# objective_loss (the model's space); --early-stopping-metric.
EARLY_STOPPING_METRICS = ("eval_loss", "objective_loss")
LOSS_NAMES = {"binary_classification": "logloss", "multiclass_classification": "mlogloss",
              "regression": "rmse"}


def loss_sums(task: str, labels: np.ndarray, scores: np.ndarray) -> tuple[float, int]:
    """(total, rows) of the task's per-row loss: squared errors (regression) or
    -log(probability of the true class) (classification). Workers holding parts of a
    split add theirs (an allreduce) and :func:`loss_from_sums` gives the whole split's
    :func:`eval_loss`, not a mean of per-shard losses."""
    if task == "binary_classification":
        p = np.clip(np.asarray(scores, dtype=np.float64), LOGLOSS_EPS, 1 - LOGLOSS_EPS)
        y = np.asarray(labels, dtype=np.float64)
        terms = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    elif task == "multiclass_classification":
        k, p = _class_probs(labels, scores)
        terms = -np.log(np.clip(p[np.arange(k.shape[0]), k], LOGLOSS_EPS, 1 - LOGLOSS_EPS))
    elif task == "regression":
        d = np.asarray(scores, dtype=np.float64) - np.asarray(labels, dtype=np.float64)
        terms = d * d
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return float(np.sum(terms)), int(np.size(terms))


def loss_from_sums(task: str, total: float, rows: int) -> float:
    """The loss of :func:`loss_sums`' (total, rows): their mean (logloss) or its square
    root (RMSE); NaN for no rows."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if rows == 0:
        return math.nan
    mean = total / rows
    return math.sqrt(mean) if task == "regression" else mean


def eval_loss(task: str, labels: np.ndarray, scores: np.ndarray) -> float:
    """The task's loss: logloss (binary classification), multi-class logloss (multiclass)
    or RMSE (regression), of whatever units ``labels`` and ``scores`` are in (the
    trainers pass label units: :func:`split_losses`)."""
    return loss_from_sums(task, *loss_sums(task, labels, scores))


def split_losses(task: str, stored_labels: np.ndarray, stored_scores: np.ndarray,
                 label_transform: dict | None) -> dict[str, float]:
    """``eval_loss`` -- the task's loss in the label's own units (the label transform
    inverted on labels and predictions: dollars for a log1p label) -- and
    ``objective_loss`` -- the same loss in the space the model is trained in (the stored,
    transformed label: RMSE of log1p values). Without a transform, and for classification,
    the two are equal. Inputs are the stored label and the model's stored-space output."""
    from mlbatch.labels import inverse_label

    objective = eval_loss(task, stored_labels, stored_scores)
    if task != "regression" or label_transform is None:
        return {"eval_loss": objective, "objective_loss": objective}
    return {"eval_loss": eval_loss(task, inverse_label(stored_labels, label_transform),
                                   inverse_label(stored_scores, label_transform)),
            "objective_loss": objective}


def loss_units(task: str, label_transform: dict | None) -> dict[str, str]:
    """What ``eval_loss`` and ``objective_loss`` measure, for metrics.json and logs:
    e.g. {"eval_loss": "rmse in label units", "objective_loss": "rmse of log1p(label)"}."""
    name = LOSS_NAMES.get(task)
    if name is None:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    space = "label" if task != "regression" or label_transform is None else (
        f"{label_transform['kind']}(label)")
    return {"eval_loss": f"{name} in label units", "objective_loss": f"{name} of {space}"}


# Before objective_loss existed, a Tune-exported XGBoost model recorded as eval_loss
# XGBoost's own per-round eval metric, in the stored label's units (log units for a log1p
# label); every other model recorded eval_loss in label units.
LEGACY_STORED_UNITS_JOBS = ("ray_jobs.tune[xgboost]",)


def recorded_losses(metrics: dict, job: str | None, label_transform: dict | None
                    ) -> dict[str, float | str | None]:
    """A model's recorded losses read by what they meant when written: ``eval_loss``
    (label units), ``objective_loss`` (the model's space) and ``note`` (None, or why a
    value is missing for a model recorded before objective_loss existed). An old
    Tune-exported XGBoost model's eval_loss of a transformed label is read as the
    objective_loss it was."""
    recorded = metrics.get("eval_loss")
    if "objective_loss" in metrics:
        return {"eval_loss": recorded, "objective_loss": metrics["objective_loss"],
                "note": None}
    if job in LEGACY_STORED_UNITS_JOBS and label_transform is not None:
        return {"eval_loss": None, "objective_loss": recorded,
                "note": f"recorded by {job} before objective_loss existed: its eval_loss is "
                        f"XGBoost's eval metric of {label_transform.get('kind')}(label), "
                        "read as objective_loss; no loss in label units was recorded"}
    return {"eval_loss": recorded, "objective_loss": None,
            "note": "recorded before objective_loss existed: eval_loss is in label units, "
                    "the objective's own loss was not recorded"}


def format_number(value: float | None, digits: int = 4) -> str:
    """A figure for a person: ``digits`` significant digits with thousands separators
    (``0.5688``, ``1,235``), whole numbers from 10**digits on (``1,720,924``, never
    ``1.72e+06``); "n/a" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int) or abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:,.{digits}g}"


def describe_losses(task: str, losses: dict, label_transform: dict | None) -> str:
    """One line for job logs and summaries, e.g. ``eval RMSE 1,720,924 (label units);
    objective RMSE of log1p(label) 0.5688``; the objective is left out when it is the
    same quantity (no transform)."""
    space = loss_units(task, label_transform)["objective_loss"].split(" of ", 1)[1]
    name = LOSS_NAMES[task].upper() if task == "regression" else LOSS_NAMES[task]
    text = f"eval {name} {format_number(losses.get('eval_loss'))} (label units)"
    if space != "label":
        text += f"; objective {name} of {space} {format_number(losses.get('objective_loss'))}"
    return text


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
