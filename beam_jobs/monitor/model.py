"""Prediction drift: a committed model artifact (any type) applied to transformed
feature tables, through the one model contract (``mlbatch.artifacts.models``)."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa

from mlbatch.artifacts.models import Model, load_model

PREDICTION = "prediction"


def model_type(root: str) -> str:
    """The model artifact's type; raises ArtifactError for anything else."""
    return load_model(root).type


class PredictFn(beam.DoFn):
    """Transformed feature tables -> tables of one column ``prediction``: the model's own
    output (float64: probabilities for binary classification, values in the stored
    label's units for regression), as the baseline's histograms were counted; for a
    multiclass model the arg-max class name (string, the first on ties), counted like a
    categorical feature."""

    def __init__(self, model_root: str):
        self._root = model_root
        self._model: Model | None = None

    def setup(self):
        self._model = load_model(self._root)
        _ = self._model.trained  # the weights, read once per worker

    def process(self, t: pa.Table):
        if not t.num_rows:
            return
        pred = self._model.predict_stored(t)
        if self._model.classes:
            names = pa.array(list(self._model.classes), pa.string())
            yield pa.table({PREDICTION: names.take(pa.array(np.argmax(pred, axis=1)))})
            return
        yield pa.table({PREDICTION: pa.array(np.asarray(pred, np.float64))})
