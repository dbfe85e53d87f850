"""Scoring a corrupted copy of the raw flights slice with the JAX model: the broken
records are dead letters with their reasons, the counts reconcile, and every eval row
(none of them broken) gets the trainer's prediction, so the eval AUC is the model's."""
from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlbatch.artifacts.models import label_units
from mlbatch import metrics
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.jax_model import load_jax_model
from mlbatch.artifacts.predictions import load_predictions
from tests.conftest import FLIGHTS_SLICE_ROWS
from tests.score.conftest import score

# (replacement of a train row's line, the reason its dead letter gives)
BROKEN = [
    (b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,far,5,15,"
     b"2013-01-01T10:00:00Z\n", "distance: not a finite number: 'far'"),
    (b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15\n",
     "expected 19 fields, got 18"),
    (b"2013,13,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,"
     b"2013-01-01T10:00:00Z\n", "month: '13' above maximum 12"),
]


def _line(example_id: str) -> int:
    return int(example_id.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def scored(flights_slice, flights_features, flights_jax, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw_broken")
    for f in flights_slice.iterdir():
        shutil.copy(f, raw / f.name)
    train_lines = sorted(_line(i) for i in
                         load_feature_set(flights_features).read_table("train")
                         .column("example_id").to_pylist())
    broken = dict(zip(train_lines[:len(BROKEN)], BROKEN))
    lines = (raw / "flights.csv").read_bytes().splitlines(keepends=True)
    for n, (text, _) in broken.items():
        lines[n - 1] = text  # line n of the file (1: the header)
    (raw / "flights.csv").write_bytes(b"".join(lines))
    out = tmp_path_factory.mktemp("scored_jax")
    return out, score(flights_features, flights_jax, raw, out), raw, broken


def test_broken_records_are_dead_letters_and_counts_reconcile(scored):
    out, summary, raw, broken = scored
    m = load_predictions(out).metrics
    assert (m["rows_read"], m["rows_scored"], m["rows_dead_letter"]) == (
        FLIGHTS_SLICE_ROWS, FLIGHTS_SLICE_ROWS - len(BROKEN), len(BROKEN))
    assert summary["reconciled"] and all(summary["checks"].values())
    dead = pq.read_table(out / "dead_letter").to_pylist()
    assert sorted((d["line"], d["job"], d["table"], d["source"]) for d in dead) == sorted(
        (n, "score", "flights", str(raw / "flights.csv")) for n in broken)
    for d in dead:
        assert broken[d["line"]][1] in d["reason"], d
    scored_lines = {_line(i) for i in load_predictions(out).read_table()
                    .column("example_id").to_pylist()}
    assert not scored_lines & set(broken)


def test_eval_rows_get_the_trainers_predictions_and_auc(scored, flights_features, flights_jax,
                                                        flights_slice):
    out, _, raw, _ = scored
    evl = load_feature_set(flights_features).read_table("eval")
    model = load_jax_model(flights_jax)
    want = model.predict(np.stack([evl.column(n).to_numpy() for n in model.numeric], axis=1),
                         np.stack([evl.column(n).to_numpy() for n in model.categorical], axis=1))
    table = load_predictions(out).read_table()
    # the same file and line as the eval Parquet's example_id, in the copied directory
    index = {_line(k): i for i, k in enumerate(table.column("example_id").to_pylist())}
    ids = evl.column("example_id").to_pylist()
    assert all(k.startswith(str(flights_slice / "flights.csv") + ":") for k in ids)
    take = np.array([index[_line(k)] for k in ids])
    got = table.column("prediction").to_numpy()[take]
    labels = table.column("label").to_numpy()[take]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, evl.column("delayed").to_numpy())
    assert metrics.auc(labels, got) == pytest.approx(model.metrics["eval_auc"], abs=1e-12)


def test_regression_predictions_are_in_label_units():
    stored = np.log1p(np.array([0.0, 9.0, 1e6]))
    np.testing.assert_allclose(label_units(stored, "regression", {"kind": "log1p"}),
                               [0.0, 9.0, 1e6], rtol=1e-12)
    np.testing.assert_array_equal(label_units(stored, "regression", None), stored)
    assert label_units(np.float32([0.25]), "binary_classification", None).dtype == np.float64
