"""The distances, histograms and the sample-size-aware null against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from beam_jobs.monitor import drift


@pytest.mark.parametrize("p, q, expected", [
    ([3, 1], [3, 1], 0.0),
    ([1, 0], [0, 1], 1.0),
    ([2, 2], [4, 0], 0.5),
    ([3, 1, 0], [1, 1, 2], 0.5),  # 0.75-0.25 = 0.5 on "a", 0 - 0.5 on the unseen "c"
])
def test_linf_distance(p, q, expected):
    assert drift.linf_distance(p, q) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("p, q, expected", [
    ([5, 5], [5, 5], 0.0),
    ([1, 0], [0, 1], 1.0),  # disjoint supports: log base 2 makes this exactly 1
    # m = (0.75, 0.25): JS = H(m) - (H(p) + H(q)) / 2 = 0.811278124459 - 0.5
    ([1, 1], [2, 0], 0.311278124459),
    ([0, 1, 1, 0], [0, 2, 0, 0], 0.311278124459),  # empty buckets contribute nothing
])
def test_js_divergence(p, q, expected):
    assert drift.js_divergence(p, q) == pytest.approx(expected, abs=1e-9)


def test_js_is_symmetric_and_scale_free():
    assert drift.js_divergence([1, 3, 6], [4, 4, 2]) == pytest.approx(
        drift.js_divergence([40, 40, 20], [10, 30, 60]), abs=1e-12)


def test_align_puts_unseen_values_last():
    keys, ref, cur = drift.align({"AA": 3, "UA": 1}, {"ZZ": 2, "AA": 1})
    assert keys == ["AA", "UA", "ZZ"]
    assert ref.tolist() == [3, 1, 0] and cur.tolist() == [1, 0, 2]


def test_histogram_overflow_buckets_and_closed_maximum():
    edges = drift.standard_edges(0.0, 10.0)
    assert edges.tolist() == [float(i) for i in range(11)]
    counts = drift.histogram(np.array([-1, 0, 0.5, 3, 9.99, 10, 10.5, np.nan]), edges)
    #                        below  [0,1) [1,2) [2,3) [3,4) ...  [9,10]  above
    assert counts.tolist() == [1, 2, 0, 0, 1, 0, 0, 0, 0, 0, 2, 1]


def test_degenerate_range_and_merged_quantile_edges():
    edges = drift.standard_edges(5.0, 5.0)
    assert drift.histogram(np.array([4.0, 5.0, 5.0, 6.0]), edges).tolist() == [1, 2, 1]
    assert drift.quantile_edges([0, 0, 0, 1, 2]).tolist() == [0.0, 1.0, 2.0]
    e = drift.training_edges(np.array([0.0] * 8 + [1.0, 2.0]))
    assert e["standard"].tolist() == pytest.approx([0.2 * i for i in range(11)])
    assert e["quantile"].tolist() == pytest.approx([0.0, 0.2, 1.1, 2.0])


def test_bad_training_range_is_named():
    with pytest.raises(ValueError, match="not a finite interval"):
        drift.standard_edges(0.0, np.inf)
    with pytest.raises(ValueError, match="no training values"):
        drift.training_edges(np.array([np.nan]))


def test_shift_out_of_training_range_reads_full_divergence():
    edges = drift.training_edges(np.arange(100.0))
    ref = drift.numeric_histograms(np.arange(100.0), edges)
    cur = drift.numeric_histograms(np.arange(200.0, 300.0), edges)  # all above the maximum
    assert drift.js_divergence(ref["standard"], cur["standard"]) == 1.0
    assert drift.js_divergence(ref["quantile"], cur["quantile"]) == 1.0


def test_small_window_null_keeps_a_plug_in_divergence_from_alarming():
    """10 draws against 1,000 of one distribution: the plug-in JS passes the fixed 0.3
    threshold in some windows; the null's 99th percentile at these sizes is close to 0.3
    itself, and the rule (threshold AND null p99) does not alarm (seeded: exact counts)."""
    rng = np.random.default_rng(7)
    results = []
    for _ in range(60):
        reference = rng.normal(size=1000)
        edges = drift.training_edges(reference)
        results.append(drift.compare_numeric(
            "x", drift.numeric_histograms(reference, edges),
            drift.numeric_histograms(rng.normal(size=10), edges)))
    assert sum(r.distance > 0.3 for r in results) == 2
    assert min(r.null_p99 for r in results) > 0.28
    assert sum(r.breach for r in results) == 0
    assert results[0].n_reference == 1000 and results[0].n_current == 10


def test_large_samples_shrink_the_null():
    p = np.array([50_000, 30_000, 20_000])
    small = np.quantile(drift.null_distances(p, 100_000, 100, "linf"), 0.99)
    large = np.quantile(drift.null_distances(p, 100_000, 100_000, "linf"), 0.99)
    assert large < 0.01 < small


def test_unseen_category_breaches_and_is_named():
    r = drift.compare_categorical("carrier", {"AA": 50, "UA": 50},
                                  {"AA": 30, "UA": 30, "ZZ": 40}, threshold=0.3)
    assert (r.name, r.metric, r.kind) == ("carrier", "linf", "categorical")
    assert r.distance == pytest.approx(0.4)
    assert r.null_p99 < 0.3 and r.breach
    assert r.to_dict()["n_current"] == 100


def test_threshold_from_the_schema_decides():
    ref, cur = {"a": 500, "b": 500}, {"a": 700, "b": 300}  # L-inf 0.2, far above the null
    assert not drift.compare_categorical("f", ref, cur, threshold=0.3).breach
    assert drift.compare_categorical("f", ref, cur, threshold=0.1).breach


def test_one_empty_side_reads_distance_one():
    r = drift.compare_categorical("f", {"a": 10}, {})
    assert (r.distance, r.null_p99, r.breach) == (1.0, 0.0, True)
    both = drift.compare_categorical("f", {}, {})
    assert (both.distance, both.breach) == (0.0, False)


def test_null_is_reproducible():
    a = drift.compare_categorical("carrier", {"AA": 5, "UA": 7}, {"AA": 6, "UA": 6})
    b = drift.compare_categorical("carrier", {"AA": 5, "UA": 7}, {"AA": 6, "UA": 6})
    assert a == b
