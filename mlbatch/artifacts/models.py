"""The one model contract: ``load_model(uri)`` reads any committed model artifact.

A model artifact is an ``xgboost_model`` or a ``jax_model`` (a Tune run's ``best/`` is
one of them). ``load_model`` reads its manifest through the manifest reader (committed,
a known major version), dispatches on the artifact's declared type and returns a
``Model``::

    model = load_model("out/xgboost")
    model.task, model.label, model.label_transform, model.feature_names
    model.predict(table)         # float64[rows] in the label's units: probabilities for
                                 # binary classification, regression values mapped back
                                 # through the label transform (expm1 for log1p)
    model.predict_stored(table)  # the model's own output: probabilities, or values in
                                 # the stored (transformed) label's units
    # multiclass_classification: model.classes names the classes; predict and
    # predict_stored return float64[rows, len(classes)] class probabilities, and
    model.predict_classes(table) # the arg-max class name per row (the first on ties)

``table`` is a transformed feature table (a features artifact's split, or the saved
transform's output): the model takes its ``feature_names`` columns, in that order.
The weights are read on the first prediction (``Model.trained``), in the process that
predicts; a ``Model`` pickles without them, so a Beam pipeline can carry it.

Each type's module (``xgboost_model``, ``jax_model``) holds its section writer, its
``input_columns`` and its reader of the files; scoring, monitoring, the run report and
the pipeline's key figures read a model directory only through here.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from mlbatch.artifacts import jax_model, xgboost_model
from mlbatch.artifacts.features import TASKS
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest
from mlbatch.labels import LabelTransformError, check_label_transform, inverse_label
from mlbatch.metrics import recorded_losses


@dataclasses.dataclass(frozen=True)
class _ModelType:
    """How the contract reads one model type: its input columns from the section, its
    reader of the files, and how the reader's object predicts (float32, int32 inputs)."""
    input_columns: Callable[[dict], tuple[tuple[str, ...], tuple[str, ...]]]
    load: Callable[[str], Any]
    predict: Callable[[Any, np.ndarray, np.ndarray], np.ndarray]


_TYPES: dict[str, _ModelType] = {
    xgboost_model.TYPE: _ModelType(xgboost_model.input_columns,
                                   xgboost_model.load_xgboost_model,
                                   lambda trained, floats, _ids: trained.predict(floats)),
    jax_model.TYPE: _ModelType(jax_model.input_columns, jax_model.load_jax_model,
                               lambda trained, floats, ids: trained.predict(floats, ids)),
}
MODEL_TYPES = tuple(_TYPES)


def label_units(values: np.ndarray, task: str, label_transform: dict | None) -> np.ndarray:
    """A model's own output as the prediction a user reads (float64): probabilities as
    they are, regression values through the inverse of the label transform."""
    values = np.asarray(values, dtype=np.float64)
    if task in ("binary_classification", "multiclass_classification"):
        return values
    return inverse_label(values, label_transform)


def _matrix(t: pa.Table, names: tuple[str, ...], dtype: type) -> np.ndarray:
    if not names:
        return np.zeros((t.num_rows, 0), dtype)
    return np.stack([t.column(n).to_numpy().astype(dtype, copy=False) for n in names], axis=1)


@dataclasses.dataclass(eq=False)
class Model:
    """A committed model artifact as every consumer sees it (see the module docstring)."""
    manifest: Manifest
    task: str
    label: str
    label_transform: dict | None
    float_columns: tuple[str, ...]  # the model's float32 inputs, in order
    int_columns: tuple[str, ...]  # its int32 inputs (vocabulary ids), in order
    classes: tuple[str, ...] = ()  # multiclass: the class of each probability column
    _trained: Any = dataclasses.field(default=None, init=False, repr=False)

    @property
    def uri(self) -> str:
        return self.manifest.root

    @property
    def type(self) -> str:
        return self.manifest.type

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def metrics(self) -> dict:
        """Eval metrics recorded when the model was trained."""
        return self.manifest.metrics

    @property
    def losses(self) -> dict:
        """``eval_loss`` (label units), ``objective_loss`` (the model's space) and a
        ``note`` for a model recorded before objective_loss existed
        (``mlbatch.metrics.recorded_losses``)."""
        job = (self.manifest.doc.get("producer") or {}).get("job")
        return recorded_losses(self.metrics, job, self.label_transform)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Every input column of the model, in the order it takes them."""
        return self.float_columns + self.int_columns

    @property
    def features(self) -> dict:
        """The recorded ``features`` input (``uri``, ``digest``) the model was trained on;
        raises ArtifactError when none is recorded."""
        return self.manifest.input("features")

    @property
    def trained(self) -> Any:
        """The type's own reader object (``XGBoostModel`` | ``JaxModel``), read once."""
        if self._trained is None:
            self._trained = _TYPES[self.type].load(self.uri)
        return self._trained

    def predict_stored(self, table: pa.Table) -> np.ndarray:
        """float64[rows]: probabilities, or values in the stored label's units;
        float64[rows, len(classes)] class probabilities for a multiclass model."""
        missing = [n for n in self.feature_names if n not in table.column_names]
        if missing:
            raise ArtifactError(f"{self.uri}: the table lacks the model's input columns "
                                f"{missing}")
        floats = _matrix(table, self.float_columns, np.float32)
        ids = _matrix(table, self.int_columns, np.int32)
        out = np.asarray(_TYPES[self.type].predict(self.trained, floats, ids), np.float64)
        if not self.classes:
            return out.reshape(-1)
        if out.size != table.num_rows * len(self.classes):
            raise ArtifactError(f"{self.uri}: the model gave {out.shape} outputs for "
                                f"{table.num_rows} rows x {len(self.classes)} classes")
        return out.reshape(table.num_rows, len(self.classes))

    def predict_classes(self, table: pa.Table) -> list[str]:
        """A multiclass model's arg-max class per row (the first class on ties)."""
        if not self.classes:
            raise ArtifactError(f"{self.uri}: a {self.task} model has no classes")
        return [self.classes[i] for i in np.argmax(self.predict_stored(table), axis=1)]

    def predict(self, table: pa.Table) -> np.ndarray:
        """float64[rows] in the label's own units (see ``label_units``)."""
        return label_units(self.predict_stored(table), self.task, self.label_transform)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_trained": None}  # the weights stay where they were read


def model_of(m: Manifest) -> Model:
    """The Model of a committed manifest already read; raises ArtifactError for a type
    that is not a model or a section lacking what the contract needs."""
    if m.type not in _TYPES:
        raise ArtifactError(f"{m.root} is a {m.type!r} artifact; a model is one of "
                            f"{MODEL_TYPES} (for a Tune run, its best/ directory)")
    body = m.body
    try:
        floats, ids = _TYPES[m.type].input_columns(body)
        model = Model(manifest=m, task=body["task"], label=body["label"],
                      label_transform=body.get("label_transform"),
                      float_columns=floats, int_columns=ids,
                      classes=tuple(body.get("classes", ())))
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{m.root}: the {m.type} section lacks {e}") from e
    if model.task not in TASKS:
        raise ArtifactError(f"{m.root}: task {model.task!r} is not one of {TASKS}")
    if (model.task == "multiclass_classification") != (len(model.classes) >= 2):
        raise ArtifactError(f"{m.root}: a multiclass model (only) names >= 2 classes; this "
                            f"{model.task} model names {len(model.classes)}")
    try:
        check_label_transform(model.label_transform)
    except LabelTransformError as e:
        raise ArtifactError(f"{m.root}: {e}") from e
    return model


def load_model(uri: str | os.PathLike) -> Model:
    """Reads the committed model artifact at ``uri`` (local path or ``gs://``)."""
    return model_of(read_manifest(uri))
