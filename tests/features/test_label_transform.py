"""Regression label transforms: the forward map (feature job) and the inverse (trainers)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from beam_jobs.tabular import prepare
from beam_jobs.tabular.records import LINE_COL, SOURCE_COL
from mlbatch.labels import (
    LabelTransformError,
    forward_label,
    inverse_label,
    transform_record,
)
from mlbatch.schema import load_schema
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def movies_schema():
    return load_schema(REPO_ROOT / "schemas" / "movies.yaml")


def test_log1p_forward_masks_values_outside_its_domain_and_inverse_round_trips():
    values, bad = forward_label(np.array([0.0, 1.0, 1e8, -1.0, -3.0, np.inf]), "log1p")
    assert bad.tolist() == [False, False, False, True, True, True]
    assert values[:3] == pytest.approx([0.0, np.log(2.0), np.log1p(1e8)])
    assert values[3:].tolist() == [0.0, 0.0, 0.0]
    assert inverse_label(values[:3], {"kind": "log1p"}) == pytest.approx([0.0, 1.0, 1e8])


def test_no_transform_is_the_identity():
    values, bad = forward_label(np.array([-5.0, 2.5]), None)
    assert values.tolist() == [-5.0, 2.5] and not bad.any()
    assert inverse_label(np.array([-5.0, 2.5]), None).tolist() == [-5.0, 2.5]
    assert transform_record(None) is None and transform_record("log1p") == {"kind": "log1p"}


@pytest.mark.parametrize("record", [{"kind": "log"}, {"kind": None}, "log1p", {}])
def test_unknown_transform_is_an_error_naming_it(record):
    with pytest.raises(LabelTransformError, match="kind must be one of"):
        inverse_label(np.zeros(1), record)


def test_prepare_excludes_missing_and_untransformable_labels_with_reasons(movies_schema):
    # the movies schema declares budget >= 0; a schema without that bound can see -2
    n = 4
    main = pa.table({
        "title": ["a", "b", "c", "d"], "year": [2000] * n, "length": [90] * n,
        "budget": pa.array([1e6, None, -2.0, 0.0]), "rating": [5.0] * n, "votes": [10] * n,
        "mpaa": ["R", None, None, "PG"],
        **{g: [0] * n for g in ("Action", "Animation", "Comedy", "Drama", "Documentary",
                                "Romance", "Short")},
        SOURCE_COL: ["m.csv"] * n, LINE_COL: [2, 3, 4, 5]})
    prepared, excluded = prepare.prepare(main, {}, movies_schema)
    assert prepared.column("example_id").to_pylist() == ["m.csv:2", "m.csv:5"]
    assert prepared.column("log1p_budget").to_pylist() == pytest.approx([np.log1p(1e6), 0.0])
    assert excluded.to_pylist() == [
        {"example_id": "m.csv:3", "reason": "label source 'budget' is missing"},
        {"example_id": "m.csv:4",
         "reason": "label 'log1p_budget' = -2.0 is outside the domain of log1p (> -1)"}]


def test_prepare_without_transform_keeps_the_raw_label(movies_schema):
    schema = dataclasses.replace(movies_schema, label=dataclasses.replace(
        movies_schema.label, transform=None))
    label, reasons = prepare.transform_label(pa.array([-2.0, 7.0], pa.float32()), schema)
    assert label.to_pylist() == [-2.0, 7.0] and reasons == [None, None]
