"""Prediction drift: a committed model artifact (XGBoost or JAX) applied to transformed
feature tables, through the artifacts' own readers."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa

from beam_jobs.monitor.stats import numbers
from mlbatch.artifacts.base import read_manifest

MODEL_TYPES = ("xgboost_model", "jax_model")
PREDICTION = "prediction"


def model_type(root: str) -> str:
    """The model artifact's type; raises ArtifactError for anything else."""
    from mlbatch.artifacts.base import ArtifactError

    kind = read_manifest(root).type
    if kind not in MODEL_TYPES:
        raise ArtifactError(f"--model {root} is a {kind!r} artifact, not one of {MODEL_TYPES}")
    return kind


def _matrix(t: pa.Table, names, dtype) -> np.ndarray:
    if not names:
        return np.zeros((t.num_rows, 0), dtype)
    return np.column_stack([numbers(t.column(n)) for n in names]).astype(dtype)


class PredictFn(beam.DoFn):
    """Transformed feature tables -> tables of one float64 column ``prediction``
    (probabilities for classification, values for regression)."""

    def __init__(self, model_root: str):
        self._root = model_root
        self._model = None

    def setup(self):
        if model_type(self._root) == "xgboost_model":
            from mlbatch.artifacts.xgboost_model import load_xgboost_model
            self._model = load_xgboost_model(self._root)
        else:
            from mlbatch.artifacts.jax_model import load_jax_model
            self._model = load_jax_model(self._root)

    def process(self, t: pa.Table):
        if not t.num_rows:
            return
        m = self._model
        if hasattr(m, "feature_names"):
            pred = m.predict(_matrix(t, m.feature_names, np.float32))
        else:
            pred = m.predict(_matrix(t, m.numeric, np.float32),
                             _matrix(t, m.categorical, np.int32))
        yield pa.table({PREDICTION: pa.array(np.asarray(pred, np.float64).reshape(-1))})
