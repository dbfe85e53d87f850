"""The Beam pieces: training edges from a sketch and statistics merged across batches
equal the in-memory ones; the transform-skew comparison of rows."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from beam_jobs.monitor import stats
from beam_jobs.monitor import transforms as t

COLUMNS = [stats.Column("x", "numeric"), stats.Column("c", "categorical")]


def _tables():
    x = np.arange(100, dtype=np.float64)
    c = [["a", "b", None, "a"][i % 4] for i in range(100)]
    whole = pa.table({"x": x, "c": pa.array(c, pa.string())})
    return [whole.slice(0, 37), whole.slice(37, 63)], whole


def test_edges_and_statistics_across_batches_match_the_whole_table():
    parts, whole = _tables()
    want_edges = stats.exact_edges(whole, COLUMNS)
    want = stats.table_statistics(whole, COLUMNS, want_edges)

    def check(results):
        (edges, got), = results
        assert edges["raw/x"]["standard"].tolist() == want_edges["raw/x"]["standard"].tolist()
        np.testing.assert_allclose(edges["raw/x"]["quantile"], want_edges["raw/x"]["quantile"],
                                   atol=1.0)  # the sketch's deciles: within one rank
        assert got["raw/c"] == want["raw/c"] == {"a": 50, "b": 25}
        assert got["raw/x"]["standard"].tolist() == want["raw/x"]["standard"].tolist()
        assert sum(got["raw/x"]["quantile"]) == 100

    with TestPipeline() as p:
        tables = p | beam.Create(parts, reshuffle=False)
        edges = tables | "Edges" >> beam.CombineGlobally(t.TrainingEdgesFn(COLUMNS))
        got = tables | t.ComputeStatistics(COLUMNS, edges)
        both = edges | beam.Map(lambda e, s: (e, s), beam.pvalue.AsSingleton(got))
        assert_that(both, check)


def test_compare_rows_names_the_differing_features():
    numeric, names = {"z"}, ["z", "id"]
    same = ("f:2", {"again": [{"z": 0.5, "id": 3}], "written": [{"z": 0.5, "id": 3}]})
    off = ("f:3", {"again": [{"z": 0.5, "id": 3}], "written": [{"z": 0.25, "id": 4}]})
    lost = ("f:4", {"again": [{"z": 0.5, "id": 3}], "written": []})
    results = [t.compare_rows(e, numeric, names) for e in (same, off, lost)]
    assert results[0] == {"missing": False, "differs": {}}
    assert results[1] == {"missing": False, "differs": {"z": 0.25, "id": 1.0}}
    summary = t.summarize_skew(results, names)
    assert (summary["sampled"], summary["missing"], summary["mismatches"]) == (2, 1, 1)
    assert summary["features"] == [{"name": "z", "mismatches": 1, "max_abs_diff": 0.25},
                                   {"name": "id", "mismatches": 1, "max_abs_diff": 1.0}]


def test_sample_is_deterministic_and_near_its_rate():
    ids = pa.array([f"flights.csv:{i}" for i in range(2, 5002)])
    a, b = t.in_sample(ids, 0.2), t.in_sample(ids, 0.2)
    assert (a == b).all() and 900 < a.sum() < 1100
    assert t.in_sample(ids, 1.0).all() and not t.in_sample(ids, 0.0).any()
