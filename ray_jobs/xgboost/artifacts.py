"""What the job leaves in ``--output``: model, metrics, importance, learning curve.

* ``model.json``            XGBoost's own JSON model (``Booster.save_model``), trees up
                            to the best round only; loads with plain ``xgboost.Booster``.
* ``metrics.json``          eval metrics of that model on the whole eval split + run facts.
* ``feature_importance.json`` gain / total gain / split count per feature, by name.
* ``learning_curve.png``    per-round train/eval metrics, best round marked.
* ``run_config.json``       the effective booster params and actor layout.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlbatch.artifacts.features import FeatureSet

MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
IMPORTANCE_FILE = "feature_importance.json"
CURVE_FILE = "learning_curve.png"
RUN_CONFIG_FILE = "run_config.json"


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False))
    return path


def feature_importance(booster, fs: FeatureSet) -> list[dict[str, Any]]:
    """Every manifest feature (unused ones with 0), sorted by average gain."""
    scores = {t: booster.get_score(importance_type=t) for t in ("gain", "total_gain", "weight")}
    rows = [{"feature": f.name, "kind": f.kind,
             "gain": float(scores["gain"].get(f.name, 0.0)),
             "total_gain": float(scores["total_gain"].get(f.name, 0.0)),
             "splits": int(scores["weight"].get(f.name, 0))} for f in fs.features]
    return sorted(rows, key=lambda r: (-r["gain"], r["feature"]))


def plot_learning_curve(history: list[dict], best: int, path: Path) -> Path:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
