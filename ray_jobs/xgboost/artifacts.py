"""What the job leaves in ``--output``, committed as an ``xgboost_model`` artifact.

* ``model.json``            XGBoost's own JSON model (``Booster.save_raw("json")``), trees
                            up to the best round only; loads with plain ``xgboost.Booster``
                            or ``mlbatch.artifacts.xgboost_model.load_xgboost_model``.
* ``metrics.json``          eval metrics of that model on the whole eval split + run facts.
* ``feature_importance.json`` gain / total gain / split count per feature, by name.
* ``learning_curve.png``    per-round train/eval metrics, best round marked.
* ``learning_curve.json``   the same per round: ``[{"round": 1, "metrics": {...}}, ...]``.
* ``run_config.json``       the effective booster params and worker layout.
* ``artifact.json``         the commit marker (written last): lineage to the features
                            artifact, config, eval metrics, timings, and the
                            ``xgboost_model`` section (``model_section``).

Every file goes through ``mlbatch.storage``, so ``--output`` may be a ``gs://`` URI.
"""
from __future__ import annotations

import io
from typing import Any

from mlbatch import storage
from mlbatch.artifacts import xgboost_model
from mlbatch.artifacts.features import FeatureSet

TYPE = xgboost_model.TYPE
MODEL_FILE = xgboost_model.MODEL_FILE
METRICS_FILE = "metrics.json"
IMPORTANCE_FILE = "feature_importance.json"
CURVE_FILE = "learning_curve.png"
CURVE_DATA_FILE = "learning_curve.json"
RUN_CONFIG_FILE = "run_config.json"


def save_model(booster, uri: str) -> None:
    """The booster as XGBoost JSON, at any URI."""
    storage.write_bytes(uri, bytes(booster.save_raw(raw_format="json")))


def model_section(fs: FeatureSet, *, best_round: int, rounds_trained: int) -> dict[str, Any]:
    """The ``xgboost_model`` section of artifact.json, written by the type's own module."""
    return xgboost_model.model_section(fs, best_round=best_round, rounds_trained=rounds_trained)


def feature_importance(booster, fs: FeatureSet) -> list[dict[str, Any]]:
    """Every manifest feature (unused ones with 0), sorted by average gain."""
    scores = {t: booster.get_score(importance_type=t) for t in ("gain", "total_gain", "weight")}
    rows = [{"feature": f.name, "kind": f.kind,
             "gain": float(scores["gain"].get(f.name, 0.0)),
             "total_gain": float(scores["total_gain"].get(f.name, 0.0)),
             "splits": int(scores["weight"].get(f.name, 0))} for f in fs.features]
    return sorted(rows, key=lambda r: (-r["gain"], r["feature"]))


def plot_learning_curve(history: list[dict], best: int, uri: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k.split("-", 1)[1] for rec in history for k in rec["metrics"]})
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    rounds = [rec["round"] for rec in history]
    for ax, name in zip(axes[0], names):
        for split in ("train", "eval"):
            key = f"{split}-{name}"
            if key in history[0]["metrics"]:
                ax.plot(rounds, [rec["metrics"][key] for rec in history], label=split)
        ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best ({best})")
        ax.set_xlabel("boosting round")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    storage.write_bytes(uri, buf.getvalue())
