"""Feature attribution drift (Vertex AI Model Monitoring's attribution skew and drift):
per-row attributions from the model contract, each feature's mean absolute attribution on
both sides, and its change as a share of the baseline's total attribution.

* XGBoost: ``pred_contribs`` (TreeSHAP): per row, one contribution per feature plus the
  bias; they sum to the margin (log-odds for binary classification). A multiclass model
  (``multi:softprob``) has one margin per class: each row's attributions are those of its
  predicted class (the arg-max margin, so the arg-max probability), summing to that margin.
* JAX: gradient x input on the model's float inputs (the exported predict function has no
  derivative, so the gradient is a central difference of step ``FD_STEP``); the
  vocabulary ids (int inputs) get no attribution. Not for a multiclass JAX model (the
  monitor refuses it on the driver).

Distance of a feature: ``|mean|a|_current - mean|a|_reference| / sum_f mean|a_f|_reference``.
Its null threshold: the 99th percentile of that distance between two samples of these
sizes with the reference's spread (a normal approximation of the difference of two means,
``z_0.995 * sd_ref * sqrt(1/n_ref + 1/n_cur)``, over the same total).
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa

from beam_jobs.monitor import drift
from mlbatch.artifacts.models import Model, load_model

STAGE = "attribution"
METRIC = "attr"
FD_STEP = 1e-2
Z_99 = 2.5758293035489  # two-sided 99%: the normal's 0.995 quantile


def _matrix(table: pa.Table, names: tuple[str, ...], dtype) -> np.ndarray:
    return np.stack([table.column(n).to_numpy().astype(dtype, copy=False) for n in names], axis=1)


def xgboost_contributions(model: Model, table: pa.Table) -> tuple[tuple[str, ...], np.ndarray]:
    """(feature names, f64[rows, features + 1]): pred_contribs, the bias last; of a
    multiclass model, those of each row's predicted (arg-max margin) class."""
    import xgboost as xgb

    trained = model.trained
    names = trained.feature_names
    dm = xgb.DMatrix(_matrix(table, names, np.float32), feature_names=list(names))
    contribs = np.asarray(trained.booster.predict(dm, pred_contribs=True), np.float64)
    if contribs.ndim == 3:  # multi:softprob: [rows, classes, features + 1]
        margins = trained.booster.predict(dm, output_margin=True)
        contribs = contribs[np.arange(len(contribs)), np.argmax(margins, axis=1)]
    return names, contribs


def jax_gradient_x_input(model: Model, table: pa.Table) -> tuple[tuple[str, ...], np.ndarray]:
    """(float input names, f64[rows, floats]): d prediction / d x_i (central difference)
    times x_i."""
    floats = _matrix(table, model.float_columns, np.float32)
    ids = (_matrix(table, model.int_columns, np.int32) if model.int_columns
           else np.zeros((table.num_rows, 0), np.int32))
    out = np.empty(floats.shape, np.float64)
    for i in range(floats.shape[1]):
        up, down = floats.copy(), floats.copy()
        up[:, i] += FD_STEP
        down[:, i] -= FD_STEP
        grad = (np.asarray(model.trained.predict(up, ids), np.float64)
                - np.asarray(model.trained.predict(down, ids), np.float64)) / (2 * FD_STEP)
        out[:, i] = grad.reshape(-1) * floats[:, i]
    return model.float_columns, out


def attributions(model: Model, table: pa.Table) -> tuple[tuple[str, ...], np.ndarray]:
    """(feature names, f64[rows, features]): per-row attributions of the model's inputs."""
    if model.type == "xgboost_model":
        names, contribs = xgboost_contributions(model, table)
        return names, contribs[:, :-1]
    return jax_gradient_x_input(model, table)


def summarize(names: tuple[str, ...], values: np.ndarray) -> dict[str, np.ndarray]:
    """{feature: [rows, sum |a|, sum a^2]}: mergeable by addition."""
    a = np.abs(values)
    return {n: np.array([a.shape[0], a[:, i].sum(), (a[:, i] ** 2).sum()])
            for i, n in enumerate(names)}


class SumAttributionsFn(beam.CombineFn):
    """Transformed feature tables -> summarize() of their attributions, summed."""

    def __init__(self, model_root: str):
        self._root = model_root
        self._model: Model | None = None

    def setup(self):
        self._model = load_model(self._root)

    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, acc: dict, table: pa.Table) -> dict:
        if table.num_rows:
            if self._model is None:
                self.setup()
            return self.merge_accumulators([acc, summarize(*attributions(self._model, table))])
        return acc

    def merge_accumulators(self, accs) -> dict:
        out: dict = {}
        for a in accs:
            for k, v in a.items():
                out[k] = out.get(k, 0) + np.asarray(v, np.float64)
        return out

    def extract_output(self, acc: dict) -> dict:
        return {k: v.tolist() for k, v in acc.items()}


def compare(reference: dict, current: dict, thresholds: dict[str, float]
            ) -> list[drift.FeatureDrift]:
    """One FeatureDrift (stage "attribution", metric "attr") per feature of the reference."""
    means = {k: (v[1] / v[0] if v[0] else 0.0) for k, v in reference.items()}
    total = sum(means.values())
    out = []
    for name, (n_ref, _, s2) in reference.items():
        n_cur, c1, _ = current.get(name, (0, 0.0, 0.0))
        threshold = thresholds.get(name, drift.DEFAULT_THRESHOLD)
        if not (n_ref and n_cur and total > 0):
            distance, null = (1.0 if n_ref or n_cur else 0.0), 0.0
        else:
            sd = np.sqrt(max(s2 / n_ref - means[name] ** 2, 0.0))
            distance = abs(c1 / n_cur - means[name]) / total
            null = Z_99 * sd * np.sqrt(1 / n_ref + 1 / n_cur) / total
        out.append(drift.FeatureDrift(name, STAGE, "numeric", METRIC, float(distance), threshold,
                                      float(null), int(n_ref), int(n_cur),
                                      bool(distance > threshold and distance > null)))
    return out
