"""The ``jax_model`` artifact: a trained model as a portable ``jax.export`` function.

Written by ``python -m ray_jobs.jax`` (and as ``best/`` of a JAX Tune run)::

    model/predict.jaxexport   serialized jax.export.Exported: predict(params, numeric, ids)
    model/params.npz          flat parameters ("params/..." names)
    model/model.json          description: task, label, feature order, sizes, config
    artifact.json             inputs: the features artifact (URI + digest); metrics: the best
                              epoch's eval metrics; and the "jax_model" section:
                              {"model", "predict", "params", "description", "task", "label",
                               "label_transform", "numeric": [names], "categorical":
                               [{"name", "cardinality", "rows"}], "epochs_completed", "step",
                               "classes"? (multiclass: the probability columns' class
                               names), "best_epoch"?, ...}

``model_section`` writes the section from the exported model's description (the job
calls it at its commit), ``input_columns`` declares the model's input for
``mlbatch.artifacts.models.load_model`` (the one model contract), and ``load_jax_model``
is the one reader of the files; it needs ``jax`` and ``numpy`` only, never the
training code: ``JaxModel.predict(numeric f32[b, n_numeric], ids i32[b, n_categorical])
-> f32[b]`` (probability for binary classification, else the value in the label
transform's units; ``f32[b, K]`` class probabilities in ``classes`` order for a multiclass
label), columns in the order of ``numeric`` and ``categorical``.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
from typing import Any

import numpy as np

from mlbatch import storage
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest

TYPE = "jax_model"
MODEL_DIR = "model"
PREDICT_FILE = "predict.jaxexport"
PARAMS_FILE = "params.npz"
DESCRIPTION_FILE = "model.json"


def model_section(description: dict, label_transform: dict | None, **facts: Any
                  ) -> dict[str, Any]:
    """The ``jax_model`` section of artifact.json for the model exported under ``model/``
    (``description``: its model.json); ``facts``: e.g. best_epoch."""
    return {"model": MODEL_DIR, "predict": f"{MODEL_DIR}/{PREDICT_FILE}",
            "params": f"{MODEL_DIR}/{PARAMS_FILE}",
            "description": f"{MODEL_DIR}/{DESCRIPTION_FILE}",
            "task": description["task"], "label": description["label"],
            "label_transform": label_transform, "numeric": description["numeric"],
            "categorical": description["categorical"],
            "epochs_completed": description["epoch"], "step": description["step"],
            **({"classes": description["classes"]} if description.get("classes") else {}),
            **facts}


def input_columns(body: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(float32 columns, int32 columns) of the model's input, in order: the numeric
    features, then the categorical ones' vocabulary ids."""
    return tuple(body["numeric"]), tuple(c["name"] for c in body["categorical"])


@dataclasses.dataclass(frozen=True)
class JaxModel:
    root: str
    manifest: Manifest
    description: dict
    params: dict  # name -> np.ndarray
    exported: object  # jax.export.Exported

    @property
    def task(self) -> str:
        return self.manifest.body["task"]

    @property
    def label(self) -> str:
        return self.manifest.body["label"]

    @property
    def label_transform(self) -> dict | None:
        return self.manifest.body.get("label_transform")

    @property
    def numeric(self) -> list[str]:
        return list(self.manifest.body["numeric"])

    @property
    def categorical(self) -> list[str]:
        return [c["name"] for c in self.manifest.body["categorical"]]

    @property
    def metrics(self) -> dict:
        return self.manifest.metrics

    def predict(self, numeric: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """f32[b]: probabilities (binary classification) or values (regression);
        f32[b, K] class probabilities (multiclass)."""
        numeric = np.asarray(numeric, np.float32)
        ids = np.asarray(ids, np.int32)
        n_num, n_cat = len(self.numeric), len(self.categorical)
        if numeric.ndim != 2 or numeric.shape[1] != n_num:
            raise ArtifactError(f"numeric: expected f32[b, {n_num}] (columns {self.numeric}), "
                                f"got shape {numeric.shape}")
        if ids.ndim != 2 or ids.shape != (numeric.shape[0], n_cat):
            raise ArtifactError(f"ids: expected i32[{numeric.shape[0]}, {n_cat}] (columns "
                                f"{self.categorical}), got shape {ids.shape}")
        return np.asarray(self.exported.call(self.params, numeric, ids))


def load_jax_model(root: str | os.PathLike) -> JaxModel:
    """Reads a committed ``jax_model`` artifact (local path or ``gs://``)."""
    from jax import export

    m = read_manifest(root, TYPE)
    body = m.body
    try:
        description = json.loads(storage.read_text(m.path(body["description"])))
        with np.load(io.BytesIO(storage.read_bytes(m.path(body["params"]))),
                     allow_pickle=False) as z:
            params = {k: z[k] for k in description["predict"]["params"]}
        exported = export.deserialize(bytearray(storage.read_bytes(m.path(body["predict"]))))
    except KeyError as e:
        raise ArtifactError(f"{m.root}: the {TYPE} files lack {e}") from e
    return JaxModel(root=m.root, manifest=m, description=description, params=params,
                    exported=exported)


def read_training_history(model: JaxModel) -> dict:
    """The training run's ``metrics.json`` (``history``: one record per epoch with step,
    eval_loss, eval_auc | eval_rmse ...; ``best``; ``last``); {} when absent."""
    uri = model.manifest.path("metrics.json")
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else {}
