"""The model handler for Beam's RunInference, over the one model contract.

Every element is a whole batch of rows (the model's input columns of the transform's
output for one chunk), never one row: the model runs on the batch at once. The key that
``KeyedModelHandler`` carries through is the batch's (example_id, label) table, so each
prediction keeps its row's example_id.

Any model artifact type is read and applied through ``mlbatch.artifacts.models``
(``load_model``, ``Model.predict``): XGBoost's ``inplace_predict`` on the float32
matrix, JAX's exported ``predict(params, numeric, ids)``. Predictions come out as
float64 in the label's own units: probabilities for binary classification; for
regression the stored-label units mapped back through the label transform.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from mlbatch.artifacts.models import Model, load_model


class ModelArtifactHandler(ModelHandler[pa.Table, PredictionResult, Model]):
    """RunInference over a committed model artifact; each element a table holding the
    model's input columns (``Model.feature_names``)."""

    def __init__(self, model: Model):
        super().__init__()
        self._uri, self._type = model.uri, model.type

    def load_model(self) -> Model:
        model = load_model(self._uri)
        _ = model.trained  # the weights, read once per worker before the first batch
        return model

    def run_inference(self, batch: Sequence[pa.Table], model: Model, inference_args=None
                      ) -> Iterable[PredictionResult]:
        return [PredictionResult(t, model.predict(t)) for t in batch]

    def get_num_bytes(self, batch: Sequence[pa.Table]) -> int:
        return sum(t.nbytes for t in batch)

    def get_metrics_namespace(self) -> str:
        return f"mlbatch_score_{self._type.removesuffix('_model')}"

    def batch_elements_kwargs(self) -> dict:
        return {"max_batch_size": 1}  # each element is already a batch of rows
