"""The fused analyzer: its statistics, and the same features as tf.Transform's own."""
import json
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from beam_jobs.features import analyzers as az
from mlbatch.artifacts.features import load_feature_set
from tests.conftest import feature_job_in_process
from tests.mlbatch.test_schema import write_schema

RNG = np.random.default_rng(7)


def _column_with_gaps(n=5000, missing=0.1):
    x = RNG.normal(3.0, 2.0, n)
    x[RNG.random(n) < missing] = np.nan
    return x


def test_moments_merged_in_any_split_equal_one_pass():
    x = np.stack([_column_with_gaps(), _column_with_gaps(missing=0.0),
                  np.full(5000, np.nan)], axis=1)
    merged = az._empty_moments(3)
    for part in np.array_split(x, [7, 1000, 1001, 4000]):
        merged = az.merge_moments(merged, az.batch_moments(part))
    for c in range(2):
        present = x[:, c][~np.isnan(x[:, c])]
        assert merged[c, az.N] == len(present)
        assert merged[c, az.MISSING] == len(x) - len(present)
        np.testing.assert_allclose(merged[c, az.MEAN], present.mean(), rtol=1e-12)
        np.testing.assert_allclose(merged[c, az.M2] / len(present), present.var(), rtol=1e-10)
        assert (merged[c, az.MIN], merged[c, az.MAX]) == (present.min(), present.max())
    assert merged[2, az.N] == 0 and merged[2, az.MISSING] == 5000


def test_scale_params_follow_tft_definitions():
    x = _column_with_gaps()
    present = x[~np.isnan(x)]
    m = az.batch_moments(x[:, None])[0]
    # z-score with mean fill: statistics of the present values, missing -> exactly 0
    fill, center, scale = az.scale_params(m, az.ScaleSpec(0, "z_score", "mean"))
    assert fill == center == pytest.approx(present.mean())
    assert scale == pytest.approx(present.std())
    # z-score with a constant fill: statistics of the filled column
    filled = np.where(np.isnan(x), 10.0, x)
    fill, center, scale = az.scale_params(m, az.ScaleSpec(0, "z_score", 10))
    assert (fill, center, scale) == (10.0, pytest.approx(filled.mean()), pytest.approx(filled.std()))
    # 0-1: min/max of the filled column, so a fill outside the range widens it
    fill, lo, width = az.scale_params(m, az.ScaleSpec(0, "scale_0_1", 100))
    assert (lo, lo + width) == (pytest.approx(present.min()), pytest.approx(100.0))
    # a constant column: no spread (the graph then uses x - mean / sigmoid(x), as tft)
    const = az.batch_moments(np.full((10, 1), 4.0))[0]
    assert az.scale_params(const, az.ScaleSpec(0, "z_score", "mean"))[2] == 0.0
    assert az.scale_params(const, az.ScaleSpec(0, "scale_0_1", "mean"))[2] == 0.0


def test_vocabulary_order_threshold_top_k_and_unwritable_tokens():
    counts = {b"b": 5, b"a": 5, b"c": 9, b"d": 1, b"": 50, b"x\ny": 50, b"e": 2}
    spec = az.VocabSpec("v", "string", top_k=None, frequency_threshold=None)
    # count descending, ties by token descending; empty and line-break tokens dropped
    assert az.order_vocabulary(counts, spec) == [b"c", b"b", b"a", b"e", b"d"]
    spec = az.VocabSpec("v", "string", top_k=2, frequency_threshold=2)
    assert az.order_vocabulary(counts, spec) == [b"c", b"b"]
    spec = az.VocabSpec("v", "string", top_k=None, frequency_threshold=1)  # <= 1: no-op
    assert len(az.order_vocabulary(counts, spec)) == 5
    ints = az.VocabSpec("m", "int64", top_k=None, frequency_threshold=None)
    assert az.order_vocabulary({9: 3, 10: 3, -1: 1}, ints) == [b"9", b"10", b"-1"]
    assert az.order_vocabulary({}, ints) == [az.EMPTY_VOCAB_TOKEN["int64"]]


def _spec(num_buckets=10, fill="mean"):
    return az.AnalysisSpec(
        n_columns=1, scales=(az.ScaleSpec(0, "z_score", "mean"),),
        buckets=(az.BucketSpec(0, num_buckets, fill),),
        vocabs=(az.VocabSpec("v", "string", None, None),))


def _run(fn, batches, pickle_between=False):
    accs = []
    for b in batches:
        acc = fn.add_input(fn.create_accumulator(), b)
        accs.append(pickle.loads(pickle.dumps(fn.compact(acc))) if pickle_between else acc)
    return fn.extract_output(fn.merge_accumulators(accs))


def test_combine_fn_is_split_invariant_and_matches_quantiles():
    x = _column_with_gaps(20000).astype(np.float32)
    tokens = RNG.choice(np.array([b"p", b"q", b"r"], dtype=object), 20000)
    fn = az.FusedStatsFn(_spec())
    one = _run(fn, [(x[:, None], tokens)])
    parts = _run(fn, [(x[i:i + 3000, None], tokens[i:i + 3000]) for i in range(0, 20000, 3000)],
                 pickle_between=True)  # accumulators cross workers pickled
    np.testing.assert_allclose(one["scale_params"], parts["scale_params"], rtol=1e-6)
    assert one["vocabularies"] == parts["vocabularies"]
    # boundaries: num_buckets - 1 of them, each within epsilon (in rank) of the exact
    # quantile of the mean-filled column
    filled = np.sort(np.where(np.isnan(x), np.nanmean(x), x))
    for out in (one, parts):
        b = out["boundaries"][0]
        assert b.shape == (1, 9)
        lo = np.searchsorted(filled, b[0], side="left") / len(filled)
        hi = np.searchsorted(filled, b[0], side="right") / len(filled)  # the fill: 10% ties
        target = np.arange(1, 10) / 10
        assert np.all((lo - 0.011 <= target) & (target <= hi + 0.011)), (lo, hi)


def test_mean_fill_enters_the_sketch_as_the_filled_rows():
    x = np.array([1, 2, 3, 4, np.nan, np.nan, np.nan, np.nan, 100], np.float32)
    out = _run(az.FusedStatsFn(_spec(num_buckets=4)), [(x[:, None], np.array([b"a"] * 9))])
    filled = np.where(np.isnan(x), np.nanmean(x), x)
    exact = _run(az.FusedStatsFn(_spec(num_buckets=4)), [(filled[:, None], np.array([b"a"] * 9))])
    np.testing.assert_array_equal(out["boundaries"][0], exact["boundaries"][0])
    assert out["bucket_fills"][0] == pytest.approx(np.nanmean(x))


def test_no_train_rows_still_gives_a_usable_transform():
    """An empty train split: finite parameters, empty-sketch boundaries of zeros (as
    tft.quantiles) and a one-token placeholder vocabulary, so the SavedModel still builds."""
    spec = az.AnalysisSpec(
        n_columns=1, scales=(az.ScaleSpec(0, "z_score", "mean"), az.ScaleSpec(0, "scale_0_1", 5)),
        buckets=(az.BucketSpec(0, 4, "mean"),),
        vocabs=(az.VocabSpec("v", "string", 10, None), az.VocabSpec("m", "int64", None, None)))
    fn = az.FusedStatsFn(spec)
    out = fn.extract_output(fn.merge_accumulators([fn.create_accumulator()]))
    assert np.isfinite(out["scale_params"]).all() and out["scale_params"].shape == (2, 3)
    assert out["scale_params"][:, 2].tolist() == [0.0, 0.0]  # no spread: no division
    np.testing.assert_array_equal(out["boundaries"][0], np.zeros((1, 3), np.float32))
    assert out["vocabularies"] == [[az.EMPTY_VOCAB_TOKEN["string"]], [b"-1"]]


def test_fused_and_per_feature_analyzers_write_the_same_features(
        flights_features, flights_slice, tmp_path):
    """The job's fused analyzer against tf.Transform's standard analyzers, end to end."""
    per_feature = tmp_path / "per_feature"
    feature_job_in_process(flights_slice, per_feature, "--analyzers", "per_feature")
    for split in ("train", "eval"):
        fused = pq.read_table(flights_features / split).sort_by("example_id")
        ref = pq.read_table(per_feature / split).sort_by("example_id")
        assert fused.num_rows == ref.num_rows > 0
        for name in ref.column_names:
            got, want = fused.column(name).to_numpy(), ref.column(name).to_numpy()
            if want.dtype.kind == "f":
                # float32 means may differ by one ulp of the raw value: pressure (~1013,
                # ulp 1.2e-4, stddev ~7) then differs by ~2e-5 in z units
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=name)
            else:
                np.testing.assert_array_equal(got, want, err_msg=name)
    per_feature_manifest = json.loads((per_feature / "artifact.json").read_text())
    assert per_feature_manifest["config"]["analyzers"] == "per_feature"
    assets = sorted(p.name for p in (per_feature / "transform_fn" / "assets").iterdir())
    assert assets == sorted(p.name for p in (flights_features / "transform_fn" / "assets").iterdir())
    for name in assets:
        assert ((flights_features / "transform_fn" / "assets" / name).read_bytes()
                == (per_feature / "transform_fn" / "assets" / name).read_bytes()), name
    fused_manifest = json.loads((flights_features / "artifact.json").read_text())
    assert fused_manifest["features"] == per_feature_manifest["features"]


def _without_buckets(doc):
    doc["features"]["buckets"] = []
    doc["features"]["crosses"] = [c for c in doc["features"]["crosses"]
                                  if not any(col.endswith("_bucket") for col in c["columns"])]


def _only_buckets(doc):
    doc["features"]["numeric"] = []


@pytest.mark.parametrize("mutate", [_without_buckets, _only_buckets])
def test_a_schema_without_buckets_or_without_scaled_features_still_analyzes(
        flights_slice, tmp_path, mutate):
    """The fused analyzer emits no zero-size outputs (tf.Transform cannot take them)."""
    out = tmp_path / "out"
    feature_job_in_process(flights_slice, out, schema=write_schema(tmp_path, mutate))
    fs = load_feature_set(out)
    assert bool(fs.numeric) == (mutate is _without_buckets)
    assert any(f.transform == "bucketize" for f in fs.features) == (mutate is _only_buckets)
    assert fs.num_rows("train") > 0
