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
    """Transformed feature tables -> tables of one float64 column ``prediction``: the
    model's own output (probabilities for classification, values in the stored label's
    units for regression), as the baseline's histograms were counted."""

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
        yield pa.table({PREDICTION: pa.array(np.asarray(pred, np.float64))})
