"""Model handlers for Beam's RunInference, one per model artifact type.

Every element is a whole batch of rows (the transform's output for one chunk), never
one row: the model runs on the batch at once. The key that ``KeyedModelHandler``
carries through is the batch's (example_id, label) table, so each prediction keeps its
row's example_id.

- XGBoost: Beam's own ``XGBoostModelHandlerNumpy`` (a 2-D array per element, one
  prediction per row), loading the booster through ``mlbatch.artifacts.xgboost_model``.
- JAX: a ModelHandler of our own (Beam has none) over the artifact's exported
  ``predict(params, numeric, ids)`` (``mlbatch.artifacts.jax_model``).

Predictions come out as float64 in the label's own units: probabilities for binary
classification; for regression the stored-label units mapped back through
``mlbatch.labels.inverse_label``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from mlbatch.artifacts.base import ArtifactError, Manifest
from mlbatch.labels import inverse_label

MODEL_TYPES = ("xgboost_model", "jax_model")


def label_units(values: np.ndarray, task: str, label_transform: dict | None) -> np.ndarray:
    """A model's raw output as the prediction the user reads (float64)."""
    values = np.asarray(values, dtype=np.float64)
    return values if task == "binary_classification" else inverse_label(values, label_transform)


def _columns(t: pa.Table, names: Sequence[str], dtype) -> np.ndarray:
    if not names:
        return np.zeros((t.num_rows, 0), dtype)
    return np.stack([t.column(n).to_numpy().astype(dtype, copy=False) for n in names], axis=1)


def _xgboost_inference(batch: Sequence[np.ndarray], model, inference_args=None
                       ) -> Iterable[PredictionResult]:
    """XGBoostModelHandler's inference_fn: each element a f32[n, features] matrix."""
    return [PredictionResult(x, label_units(model.predict(x), model.task, model.label_transform))
            for x in batch]


def _xgboost_handler_class():
    from apache_beam.ml.inference.xgboost_inference import XGBoostModelHandlerNumpy

    class XGBoostArtifactHandler(XGBoostModelHandlerNumpy):
        """Beam's numpy XGBoost handler; the model read through the artifact reader."""

        def load_model(self):
            from mlbatch.artifacts.xgboost_model import load_xgboost_model
            return load_xgboost_model(self._model_state)

        def get_metrics_namespace(self) -> str:
            return "mlbatch_score_xgboost"

    return XGBoostArtifactHandler


class JaxModelHandler(ModelHandler[tuple, PredictionResult, Any]):
    """RunInference over a ``jax_model`` artifact's exported predict; each element a
    (numeric f32[n, n_numeric], ids i32[n, n_categorical]) pair."""

    def __init__(self, model_uri: str):
        super().__init__()
        self._uri = model_uri

    def load_model(self):
        from mlbatch.artifacts.jax_model import load_jax_model
        return load_jax_model(self._uri)

    def run_inference(self, batch: Sequence[tuple], model, inference_args=None
                      ) -> Iterable[PredictionResult]:
        return [PredictionResult(x, label_units(model.predict(*x), model.task,
                                                model.label_transform)) for x in batch]

    def get_num_bytes(self, batch: Sequence[tuple]) -> int:
        return sum(a.nbytes for x in batch for a in x)

    def get_metrics_namespace(self) -> str:
        return "mlbatch_score_jax"

    def batch_elements_kwargs(self) -> dict:
        return {"max_batch_size": 1}  # each element is already a batch of rows


@dataclasses.dataclass(frozen=True)
class ScoringModel:
    """What the pipeline needs of a model artifact, from its manifest (driver side)."""
    uri: str
    type: str
    digest: str
    task: str
    label: str
    label_transform: dict | None
    inputs: tuple[tuple[str, ...], ...]  # column order of each part of an element

    def to_example(self, t: pa.Table):
        """A transformed batch as the element its handler takes."""
        if self.type == "xgboost_model":
            return _columns(t, self.inputs[0], np.float32)
        return _columns(t, self.inputs[0], np.float32), _columns(t, self.inputs[1], np.int32)

    def handler(self) -> ModelHandler:
        if self.type == "xgboost_model":
            import xgboost

            return _xgboost_handler_class()(
                model_class=xgboost.Booster, model_state=self.uri,
                inference_fn=_xgboost_inference, max_batch_size=1)
        return JaxModelHandler(self.uri)


def scoring_model(m: Manifest) -> ScoringModel:
    """The ScoringModel of a committed model manifest; raises ArtifactError for a type
    this job cannot score or a section lacking what it needs."""
    if m.type not in MODEL_TYPES:
        raise ArtifactError(f"{m.root} is a {m.type!r} artifact; --model takes one of "
                            f"{MODEL_TYPES} (for a Tune run, its best/ directory)")
    body = m.body
    try:
        if m.type == "xgboost_model":
            inputs = (tuple(body["feature_names"]),)
        else:
            inputs = (tuple(body["numeric"]), tuple(c["name"] for c in body["categorical"]))
        return ScoringModel(uri=m.root, type=m.type, digest=m.digest, task=body["task"],
                            label=body["label"], label_transform=body.get("label_transform"),
                            inputs=inputs)
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{m.root}: the {m.type} section lacks {e}") from e

