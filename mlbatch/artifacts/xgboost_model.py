"""The ``xgboost_model`` artifact: a trained booster and what it needs to be applied.

Written by ``python -m ray_jobs.xgboost`` (and as ``best/`` of an XGBoost Tune run)::

    model.json                XGBoost's JSON model (trees up to the best round)
    metrics.json feature_importance.json learning_curve.png learning_curve.json run_config.json
    artifact.json             inputs: the features artifact (URI + digest); metrics: eval
                              metrics of model.json on the whole eval split; and

    "xgboost_model": {"model": "model.json", "format": "xgboost-json", "task", "label",
                      "label_transform", "feature_names": [...in column order...],
                      "features": [...], "best_round", "rounds_trained"}

``model_section`` writes the section (the job calls it at its commit),
``input_columns`` declares the model's input for ``mlbatch.artifacts.models.load_model``
(the one model contract), and ``load_xgboost_model`` is the one reader of the files: it
needs ``xgboost`` and nothing of the job.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from mlbatch import storage
from mlbatch.artifacts.features import FeatureSet
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest

TYPE = "xgboost_model"
MODEL_FILE = "model.json"


def model_section(fs: FeatureSet, *, best_round: int, rounds_trained: int) -> dict[str, Any]:
    """The ``xgboost_model`` section of artifact.json for a booster trained on ``fs``
    (``classes`` only for a multiclass label: the order of the probability columns)."""
    section = {"model": MODEL_FILE, "format": "xgboost-json", "task": fs.task,
               "label": fs.label, "label_transform": fs.label_transform,
               "feature_names": fs.names, "features": [f.to_dict() for f in fs.features],
               "best_round": int(best_round), "rounds_trained": int(rounds_trained)}
    if fs.classes:
        section["classes"] = list(fs.classes)
    return section


def input_columns(body: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(float32 columns, int32 columns) of the model's input, in order: every feature, ids
    included, is one float32 column of the booster's matrix."""
    return tuple(body["feature_names"]), ()


@dataclasses.dataclass(frozen=True)
class XGBoostModel:
    root: str
    manifest: Manifest
    booster: object  # xgboost.Booster
    feature_names: tuple[str, ...]  # the order of the model's input columns
    task: str
    label: str
    label_transform: dict | None
    best_round: int

    @property
    def metrics(self) -> dict:
        """Eval metrics recorded when the model was trained."""
        return self.manifest.metrics

    @property
    def features_uri(self) -> str | None:
        """The features artifact the model was trained on (lineage)."""
        try:
            return self.manifest.input("features")["uri"]
        except ArtifactError:
            return None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (binary classification; [n, classes] for multiclass) or values
        for f32[n, len(feature_names)]."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ArtifactError(f"expected an array [n, {len(self.feature_names)}] in the order "
                                f"of feature_names, got shape {x.shape}")
        return np.asarray(self.booster.inplace_predict(x))


def load_xgboost_model(root: str | os.PathLike) -> XGBoostModel:
    """Reads a committed ``xgboost_model`` artifact (local path or ``gs://``)."""
    import xgboost as xgb

    m = read_manifest(root, TYPE)
    body = m.body
    try:
        raw = storage.read_bytes(m.path(body["model"]))
        booster = xgb.Booster()
        booster.load_model(bytearray(raw))
        names = tuple(body["feature_names"])
        model = XGBoostModel(root=m.root, manifest=m, booster=booster, feature_names=names,
                             task=body["task"], label=body["label"],
                             label_transform=body.get("label_transform"),
                             best_round=int(body["best_round"]))
    except KeyError as e:
        raise ArtifactError(f"{m.root}: the {TYPE} section lacks {e}") from e
    if booster.feature_names is not None and tuple(booster.feature_names) != names:
        raise ArtifactError(f"{m.root}: model.json's feature names {booster.feature_names} "
                            f"differ from artifact.json's {list(names)}")
    return model


def read_training_record(model: XGBoostModel) -> dict:
    """What the training run wrote beside the model: ``metrics`` (metrics.json: eval
    metrics, best round, rows, times), ``feature_importance`` (per feature: gain,
    total_gain, splits, sorted by gain) and ``learning_curve_png`` (bytes, or None)."""
    def optional(name: str) -> bytes | None:
        uri = model.manifest.path(name)
        return storage.read_bytes(uri) if storage.exists(uri) else None

    metrics, importance = optional("metrics.json"), optional("feature_importance.json")
    return {"metrics": json.loads(metrics) if metrics else {},
            "feature_importance": json.loads(importance) if importance else [],
            "learning_curve_png": optional("learning_curve.png")}
