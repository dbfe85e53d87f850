"""The Models section: learning curves, feature importance, one comparison table on the
eval split and ROC curves (classification) or residuals (regression)."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from mlbatch import metrics
from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.features import FeatureSet, load_feature_set
from mlbatch.artifacts.jax_model import read_training_history
from mlbatch.artifacts.models import MODEL_TYPES, Model, load_model
from mlbatch.artifacts.xgboost_model import read_training_record
from mlbatch.labels import inverse_label
from pipelines.report import figures
from pipelines.report.blocks import (Figure, Section, Table, Text, absent, fmt, short_digest,
                                     table)
from pipelines.report.run import Run, Step

LOGGER = logging.getLogger(__name__)
# the comparison table's metrics per task (as mlbatch.metrics.task_metrics names them)
TASK_METRICS = {"binary_classification": ("auc", "logloss", "accuracy"),
                "multiclass_classification": ("logloss", "accuracy", "auc_ovr_macro",
                                              "auc_ovr_weighted"),
                "regression": ("rmse", "mae")}
MAX_EVAL_ROWS = 200_000
TOP_FEATURES = 15


@dataclasses.dataclass(frozen=True)
class Scored:
    step: Step
    model: Model
    features: FeatureSet
    labels: np.ndarray  # label of the eval rows, in the label's own units
    scores: np.ndarray  # the model's predictions for them


def metric(m: dict, name: str) -> float | None:
    """A metric as either trainer records it (``auc`` or ``eval_auc``)."""
    value = m.get(name, m.get(f"eval_{name}"))
    return float(value) if isinstance(value, (int, float)) else None


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score threshold."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order] > 0.5
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def features_of(run: Run, manifest) -> FeatureSet:
    """The features a model was trained on: the run's step with that digest, else its URI."""
    entry = manifest.input("features")
    step = run.by_digest().get(entry.get("digest"))
    return load_feature_set(step.uri if step else entry["uri"], check_columns=False)


def predict(model: Model, fs: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) on the eval split (its first MAX_EVAL_ROWS rows), both in the
    label's own units (probabilities and 0/1 labels for classification; regression through
    the inverse of the label transform, the units the trainers' metrics are in)."""
    t = fs.read_table("eval").slice(0, MAX_EVAL_ROWS)
    labels = t[fs.label].to_numpy(zero_copy_only=False).astype(float)
    if fs.task != "binary_classification":
        labels = inverse_label(labels, fs.label_transform)
    return labels, model.predict(t)


def load_models(run: Run) -> tuple[list[Scored], list[str]]:
    scored, problems = [], []
    for step in [s for s in run.steps if s.type in MODEL_TYPES]:
        try:
            model = load_model(step.uri)
            fs = features_of(run, model.manifest)
            labels, scores = predict(model, fs)
            scored.append(Scored(step, model, fs, labels, scores))
        except (ArtifactError, ImportError, KeyError, ValueError) as e:
            LOGGER.warning("model step %s: %s", step.name, e)
            problems.append(f"{step.name}: {e}")
    return scored, problems


def split_labels(fs: FeatureSet, split: str) -> np.ndarray:
    """A split's labels in the label's own units (what the trainers' metrics are in)."""
    t = fs.read_table(split, [fs.label])
    y = t[fs.label].to_numpy(zero_copy_only=False).astype(float)
    return y if fs.task == "binary_classification" else inverse_label(y, fs.label_transform)


def baseline(fs: FeatureSet) -> tuple[str, dict[str, float | None]]:
    """What a model that ignores every feature scores on the eval split: the train base
    rate as every row's probability (its logloss; AUC 0.5; accuracy of the majority train
    class), or the train mean as every row's value (its RMSE and MAE)."""
    train, eval_ = split_labels(fs, "train"), split_labels(fs, "eval")
    if fs.task == "multiclass_classification":
        return multiclass_baseline(fs, train, eval_)
    const = np.full(eval_.shape, float(np.mean(train)))
    if fs.task == "binary_classification":
        name = f"baseline: train base rate {fs.label} = {np.mean(train):.4g}"
        return name, {"auc": 0.5, "logloss": metrics.logloss(eval_, const),
                      "accuracy": metrics.accuracy(eval_, np.round(const))}
    name = f"baseline: train mean {fs.label} = {np.mean(train):.4g}"
    return name, {"rmse": metrics.rmse(eval_, const), "mae": metrics.mae(eval_, const)}


def multiclass_baseline(fs: FeatureSet, train: np.ndarray, eval_: np.ndarray
                        ) -> tuple[str, dict[str, float | None]]:
    """The train split's class shares as every eval row's probabilities: their logloss,
    the majority class's accuracy, one-vs-rest AUC 0.5."""
    k = max(len(fs.classes or ()), int(max(train.max(initial=0), eval_.max(initial=0))) + 1)
    priors = np.bincount(train.astype(int), minlength=k) / max(len(train), 1)
    const = np.tile(priors, (len(eval_), 1))
    major = int(np.argmax(priors))
    name = (f"baseline: train class shares (majority "
            f"{fs.classes[major] if fs.classes else major})")
    return name, {"logloss": metrics.multi_logloss(eval_, const),
                  "accuracy": float(np.mean(eval_.astype(int) == major)),
                  "auc_ovr_macro": 0.5, "auc_ovr_weighted": 0.5}


def baseline_rows(scored: list[Scored], names: tuple[str, ...]) -> list[list]:
    """One baseline row per distinct feature artifact the models were trained on."""
    rows, seen = [], set()
    for s in scored:
        if s.features.digest in seen:
            continue
        seen.add(s.features.digest)
        label, values = baseline(s.features)
        rows.append([label, "no features", short_digest(s.features.digest),
                     s.features.num_rows("eval"), *[values.get(n) for n in names], None, None,
                     None])
    return rows


def comparison(scored: list[Scored]) -> list:
    task = scored[0].model.task
    names = TASK_METRICS.get(task, ("rmse", "mae"))
    rows = []
    for s in scored:
        m = s.model.metrics
        best = (s.model.trained.best_round if s.step.type == "xgboost_model"
                else s.model.manifest.body.get("best_epoch"))
        rows.append([s.step.name, s.step.type, short_digest(s.features.digest),
                     s.features.num_rows("eval"), *[metric(m, n) for n in names],
                     s.model.losses["objective_loss"], best,
                     s.model.manifest.doc.get("timings", {}).get("wall_s")])
    digests = {s.features.digest for s in scored}
    same = (f"All models are scored on the same eval split (features {short_digest(*digests)})."
            if len(digests) == 1 else "The models were trained on different feature artifacts: "
            "their eval splits differ, so the rows are not comparable.")
    units = metrics.loss_units(task, scored[0].model.label_transform)["objective_loss"]
    notes = [Text(f"{s.step.name}: {s.model.losses['note']}.", "note") for s in scored
             if s.model.losses["note"]]
    return [table(["step", "type", "features", "eval rows", *names, "objective loss",
                   "best round/epoch", "wall s"], rows + baseline_rows(scored, names),
                  "Eval metrics recorded by each training run (task: "
                  f"{task}) in the label's own units, the objective's loss ({units}), and the "
                  "baseline each must beat: a constant prediction from the train labels "
                  "alone"),
            Text(same, "p" if len(digests) == 1 else "alert"), *notes]


def quality_figure(scored: list[Scored]) -> Figure | None:
    """ROC curves (binary), residuals (regression); None for multiclass (its confusion
    matrices stand in)."""
    if scored[0].model.task == "multiclass_classification":
        return None
    if scored[0].model.task == "binary_classification":
        series = {}
        for s in scored:
            fpr, tpr = roc_points(s.labels, s.scores)
            series[f"{s.step.name} (AUC {metrics.auc(s.labels, s.scores):.3f})"] = (fpr, tpr)
        png = figures.lines(series, title="ROC on the eval split", xlabel="false positive rate",
                            ylabel="true positive rate", diagonal=True)
        return Figure("models-roc", png, "ROC curves", "ROC curves, predictions of each model "
                      "on the eval split (AUC recomputed from them)")
    png = figures.residuals({s.step.name: (s.labels, s.scores) for s in scored},
                            title="residuals")
    return Figure("models-residuals", png, "residual plots",
                  "Residuals on the eval split, in the label's own units")


def curve_blocks(s: Scored) -> list:
    if s.step.type == "xgboost_model":
        record = read_training_record(s.model.trained)
        blocks = []
        if record["learning_curve_png"]:
            blocks.append(Figure(f"{s.step.name}-curve", record["learning_curve_png"],
                                 f"{s.step.name} learning curve",
                                 f"{s.step.name}: per-round train/eval metrics (the training "
                                 f"run's own figure; best round {s.model.trained.best_round})"))
        imp = record["feature_importance"][:TOP_FEATURES]
        if imp:
            blocks.append(Figure(f"{s.step.name}-importance", figures.barh(
                [r["feature"] for r in imp], [r["gain"] for r in imp],
                title=f"{s.step.name}: feature importance", xlabel="average gain"),
                "feature importance", f"{s.step.name}: the {len(imp)} features with the "
                "highest average gain"))
            blocks.append(table(["feature", "kind", "gain", "total gain", "splits"],
                                [[r["feature"], r["kind"], r["gain"], r["total_gain"],
                                  r["splits"]] for r in imp], f"{s.step.name}: importance"))
        return blocks
    history = read_training_history(s.model.trained).get("history", [])
    if not history:
        return [Text(f"{s.step.name}: no per-epoch history recorded.", "note")]
    keys = [k for k in ("eval_loss", "eval_auc", "eval_rmse", "eval_mae") if k in history[0]]
    steps = [h["step"] for h in history]
    series = {k: (steps, [h[k] for h in history]) for k in keys}
    return [Figure(f"{s.step.name}-curve", figures.lines(series, title=f"{s.step.name}: eval "
                                                          "metrics per epoch", xlabel="step"),
                   f"{s.step.name} learning curve", f"{s.step.name}: eval metrics per epoch"),
            table(["epoch", "step", *keys], [[h["epoch"], h["step"], *[h[k] for k in keys]]
                                             for h in history], f"{s.step.name}: per epoch"),
            Text(f"{s.step.name}: the JAX run records no feature importance.", "note")]


def confusion_of(m: dict) -> dict | None:
    """A model's confusion matrix, as the multiclass trainers record it in their metrics
    (``confusion_matrix`` at the top or in the ``eval`` section): {"classes": [...],
    "counts": [[...]]}, rows the true class, columns the predicted one."""
    for where in (m, m.get("eval") if isinstance(m.get("eval"), dict) else {}):
        cm = where.get("confusion_matrix")
        if isinstance(cm, dict) and cm.get("classes") and cm.get("counts"):
            return cm
    return None


def confusion_table(name: str, cm: dict) -> Table:
    """Counts with each row's share of its true class (shaded by that share), class names
    on both axes, a total per row and the recall on the diagonal."""
    classes, counts = [str(c) for c in cm["classes"]], np.asarray(cm["counts"], dtype=np.int64)
    if counts.shape != (len(classes), len(classes)):
        raise ValueError(f"{name}: confusion matrix of {counts.shape} for {len(classes)} classes")
    totals = counts.sum(axis=1)
    shares = counts / np.maximum(totals, 1)[:, None]
    rows = [[f"true {c}", *[f"{fmt(int(n))} ({share:.0%})" for n, share in zip(counts[i],
                                                                             shares[i])],
             fmt(int(totals[i]))] for i, c in enumerate(classes)]
    shade = tuple((None, *(float(x) for x in shares[i]), None) for i in range(len(classes)))
    correct = int(np.trace(counts))
    caption = (f"{name}: confusion matrix on the eval split (rows: true class, columns: "
               f"predicted; each cell's share of its row, shaded by it); accuracy "
               f"{fmt(correct)} of {fmt(int(totals.sum()))} = "
               f"{correct / max(int(totals.sum()), 1):.4g}")
    return Table(("true \\ predicted", *classes, "rows"), tuple(tuple(r) for r in rows),
                 caption, (False, *[True] * (len(classes) + 1)), shade)


def confusion_blocks(scored: list[Scored]) -> list:
    blocks = []
    for s in scored:
        cm = confusion_of(s.model.metrics)
        if cm is not None:
            try:
                blocks.append(confusion_table(s.step.name, cm))
            except ValueError as e:
                blocks.append(Text(str(e), "alert"))
    return blocks


def models_section(run: Run) -> Section:
    scored, problems = load_models(run)
    if not scored and not problems:
        return absent("models", "Models", "no XGBoost or JAX model step")
    blocks = [Text(p, "alert") for p in problems]
    if scored:
        blocks += comparison(scored)
        blocks += confusion_blocks(scored)
        figure = quality_figure(scored)
        blocks += [figure] if figure is not None else []
        for s in scored:
            blocks += curve_blocks(s)
    return Section("models", "Models", tuple(blocks), shown=tuple(s.step.name for s in scored))
