"""Serving builds the transform's input tensors through the feature job's TFXIO adapter."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from beam_jobs.tabular import serving, tensors
from mlbatch.schema import load_schema
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def flights():
    return load_schema(REPO_ROOT / "schemas" / "flights.yaml")


def _prepared(schema, n: int, overrides: dict) -> pa.Table:
    kinds = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    types = schema.prepared_columns()
    return pa.table({name: overrides.get(name, pa.nulls(n, kinds[types[name]]))
                     for name in schema.transform_inputs()})


def test_serving_tensors_are_the_adapters_varlen_sparse_tensors(flights):
    t = _prepared(flights, 4, {
        "distance": pa.array([1400.5, None, 0.1, 17.0]),
        "plane_seats": pa.array([None, 2**53 + 1, 55, None], pa.int64()),
        "carrier": pa.array(["UA", "B6", None, "\u00e9"])})
    x = serving.transform_inputs(t, flights)
    assert set(x) == set(flights.transform_inputs())
    assert x["distance"].indices.numpy().tolist() == [[0, 0], [2, 0], [3, 0]]
    assert x["distance"].values.numpy().tolist() == np.array(
        [1400.5, 0.1, 17.0], np.float32).tolist()  # float32, as tf.Transform saw in training
    assert x["plane_seats"].values.numpy().tolist() == [2**53 + 1, 55]  # int64 stays exact
    assert x["carrier"].values.numpy().tolist() == ["UA".encode(), b"B6", "\u00e9".encode()]
    # an input with no value in the batch keeps the [rows, 1] shape of the others
    assert x["tailnum"].dense_shape.numpy().tolist() == [4, 1]
    assert x["tailnum"].values.numpy().tolist() == []
    assert x["distance"].dense_shape.numpy().tolist() == [4, 1]


def test_the_feature_job_uses_the_same_adapter_config(flights):
    from beam_jobs.features import pipeline
    assert pipeline.tensor_adapter_config is tensors.tensor_adapter_config
    config = tensors.tensor_adapter_config(flights, pipeline.tfxio_arrow_schema(flights))
    assert sorted(config.tensor_representations) == sorted(flights.transform_inputs())
