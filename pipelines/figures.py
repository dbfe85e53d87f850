"""Key figures of a step's committed output, read from its ``artifact.json`` (a model's
through the model contract, ``mlbatch.artifacts.models``), and the library versions a
run records."""
from __future__ import annotations

import platform
from importlib import metadata

from mlbatch.artifacts import ArtifactError, Manifest
from mlbatch.artifacts.models import MODEL_TYPES, model_of
from pipelines.cache import output_digest

_EVAL_KEYS = ("auc", "rmse", "eval_auc", "eval_rmse", "logloss", "mae")
_VERSIONED = {"apache_beam": "apache-beam", "tensorflow_transform": "tensorflow-transform",
              "ray": "ray", "jax": "jax", "xgboost": "xgboost", "mlbatch": "mlbatch"}


def _eval_metrics(metrics: dict) -> dict:
    found = dict(metrics.get("eval") or {}) if isinstance(metrics.get("eval"), dict) else {}
    found.update({k: v for k, v in metrics.items() if k in _EVAL_KEYS})
    return {k.removeprefix("eval_"): v for k, v in found.items()
            if k.removeprefix("eval_") in _EVAL_KEYS and isinstance(v, (int, float))}


def _rows(manifest) -> int | None:
    rows = manifest.rows
    if manifest.type == "cooccurrence" and isinstance(rows, dict):
        return rows.get("vocab")  # the matrix's rows: one per vocabulary word
    if manifest.type == "evaluation":  # its parts (scored keys, labels) overlap: not a sum
        joined = manifest.metrics.get("rows_joined")
        return joined if isinstance(joined, int) else None
    if isinstance(rows, dict) and rows and all(isinstance(v, int) for v in rows.values()):
        return sum(rows.values())
    metrics = manifest.metrics
    for key in ("rows_scored", "rows", "n_current"):
        if isinstance(metrics.get(key), int):
            return metrics[key]
    return None


def _model_figures(m: Manifest) -> dict:
    """A model's eval metrics, read through the model contract; a committed model the
    contract refuses (so no consumer can score with it) says why instead."""
    try:
        return _eval_metrics(model_of(m).metrics)
    except ArtifactError as e:
        return {"unreadable": str(e)}


def key_figures(root: str) -> dict:
    """{"rows", "digest", and per type: eval metrics, best trial, verdict ...} ({} when
    ``root`` holds no committed artifact)."""
    from mlbatch.artifacts import read_manifest

    if output_digest(root) is None:
        return {}
    m = read_manifest(root)
    figures: dict = {"type": m.type, "digest": m.digest}
    rows = _rows(m)
    if rows is not None:
        figures["rows"] = rows
    figures.update(_model_figures(m) if m.type in MODEL_TYPES else _eval_metrics(m.metrics))
    if m.type == "tune_run":
        best = m.body.get("best") or {}
        figures.update(best_trial=best.get("trial_id"), metric=m.body.get("metric"),
                       best_metric=best.get("metric"), trials=m.metrics.get("trials"))
    if m.type == "monitor":
        figures.update(verdict=m.metrics.get("verdict"),
                       features_breached=m.metrics.get("features_breached"))
    if m.type == "cooccurrence":
        figures.update(pairs=m.metrics.get("nnz"), svd_dim=m.metrics.get("svd_dim"))
    if m.type == "cooccurrence_evaluation":
        from mlbatch.artifacts.cooccurrence_evaluation import load_evaluation
        models = load_evaluation(root).results.get("models", {})
        figures["wordsim353"] = {name: r["wordsim353"]["spearman"] for name, r in models.items()
                                 if isinstance(r.get("wordsim353", {}).get("spearman"), float)}
    if m.type == "features" and isinstance(m.rows, dict):
        figures.update({f"rows_{k}": v for k, v in m.rows.items()})
    return figures


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def summary(figures: dict) -> str:
    """One cell of the final table."""
    if not figures:
        return ""
    kind = figures.get("type")
    if "unreadable" in figures:
        return f"unreadable model: {figures['unreadable']}"
    if kind == "tune_run":
        return (f"best trial {figures.get('best_trial')}: {figures.get('metric')}="
                f"{_fmt(figures.get('best_metric'))} ({figures.get('trials')} trials)")
    if kind == "cooccurrence":
        return (f"vocab {figures.get('rows', 0):,}, {figures.get('pairs') or 0:,} pairs, "
                f"svd {figures.get('svd_dim')}")
    if kind == "cooccurrence_evaluation":
        rho = figures.get("wordsim353") or {}
        ours = max((v for k, v in rho.items() if k.startswith("ours")), default=None)
        w2v = max((v for k, v in rho.items() if not k.startswith("ours")), default=None)
        return (f"WS353 rho: ours {_fmt(ours)}, word2vec {_fmt(w2v)}"
                if ours is not None and w2v is not None else "")
    if kind == "monitor":
        return f"verdict {figures.get('verdict')} ({figures.get('features_breached')} breached)"
    parts = [f"{k}={_fmt(figures[k])}" for k in ("auc", "rmse", "logloss") if k in figures]
    if kind == "features":
        parts.insert(0, f"train {figures.get('rows_train'):,} / eval {figures.get('rows_eval'):,}"
                     if "rows_train" in figures else "")
    elif kind == "evaluation" and "rows" in figures:
        parts.insert(0, f"{figures['rows']:,} rows joined to their labels")
    elif "rows" in figures:
        parts.insert(0, f"{figures['rows']:,} rows")
    return ", ".join(p for p in parts if p)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for key, dist in _VERSIONED.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out
