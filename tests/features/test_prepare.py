import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from beam_jobs.common import prepare
from beam_jobs.common.records import LINE_COL, SOURCE_COL
from mlbatch.schema import JoinSpec, load_schema
from tests.features.test_schema import FLIGHTS


@pytest.fixture(scope="module")
def schema():
    return load_schema(FLIGHTS)


def test_dedupe_lookup_keeps_first_and_counts(schema):
    planes = schema.tables["planes"]
    b = pa.record_batch({c: pa.nulls(3, t) for c, t in [
        ("tailnum", pa.string()), ("year", pa.int64()), ("type", pa.string()),
        ("manufacturer", pa.string()), ("model", pa.string()), ("engines", pa.int64()),
        ("seats", pa.int64()), ("speed", pa.float64()), ("engine", pa.string())]} | {
        "tailnum": pa.array(["N1", "N2", "N1"]), "seats": pa.array([10, 20, 30]),
        SOURCE_COL: pa.array(["p.csv"] * 3), LINE_COL: pa.array([2, 3, 4])})
    table, dupes = prepare.dedupe_lookup(planes, [b])
    assert dupes == 1
    assert table.column("tailnum").to_pylist() == ["N1", "N2"]
    assert table.column("seats").to_pylist() == [10, 20]


def test_left_join_keeps_rows_and_order():
    left = pa.table({"k": ["a", "b", None, "a"], "v": [1, 2, 3, 4]})
    right = pa.table({"k": ["a", "c"], "w": [10.0, 30.0]})
    out = prepare.join_lookup(left, right, JoinSpec(table="r", on=("k",), prefix="r_"))
    assert out.column("v").to_pylist() == [1, 2, 3, 4]
    assert out.column("r_w").to_pylist() == [10.0, None, None, 10.0]


def test_derived_columns(schema):
    t = pa.table({"year": [2013, 2013, 2013], "month": [1, 1, 12], "day": [1, 5, 31],
                  "sched_dep_time": [515, 2359, 5], "plane_year": [2004, None, 2013]})
    out = prepare.add_derived(t, schema)
    # 2013-01-01 was a Tuesday (ISO Monday = 0), 2013-01-05 a Saturday, 2013-12-31 a Tuesday
    assert out.column("day_of_week").to_pylist() == [1, 5, 1]
    assert out.column("dep_hour").to_pylist() == [5, 23, 0]
    assert out.column("plane_age").to_pylist() == [9, None, 0]


def test_label_and_exclusion(schema):
    t = pa.table({"arr_delay": pa.array([16.0, 15.0, None, -3.0])})
    label, missing = prepare.label_array(t, schema)
    assert label.to_pylist() == [1.0, 0.0, 0.0, 0.0]
    assert missing.tolist() == [False, False, True, False]


def test_split_is_deterministic_and_close_to_fraction(schema):
    n = 20_000
    rng = np.random.default_rng(0)
    t = pa.table({"year": [2013] * n, "month": rng.integers(1, 13, n).tolist(),
                  "day": rng.integers(1, 29, n).tolist(), "carrier": ["UA"] * n,
                  "flight": list(range(n)), "origin": ["EWR"] * n,
                  "sched_dep_time": [600] * n})
    a = prepare.split_is_eval(t, schema)
    b = prepare.split_is_eval(t.slice(0, 1000), schema)
    assert (a[:1000] == b).all()  # a row's split does not depend on its batch
    assert abs(a.mean() - schema.split.eval_fraction) < 0.015


def test_cross_hash_is_a_stable_fingerprint():
    # Crosses are bucketed with FarmHash Fingerprint64 (tf.strings.to_hash_bucket_fast):
    # stable across processes and hosts; it must equal the documented fingerprint % n.
    ids = tf.strings.to_hash_bucket_fast(["EWR_X_IAH", "JFK_X_LAX", "UA_X_5"], 1024).numpy()
    again = tf.strings.to_hash_bucket_fast(tf.constant(["EWR_X_IAH", "JFK_X_LAX", "UA_X_5"]),
                                           1024).numpy()
    assert ids.tolist() == again.tolist()
    fp = tf.fingerprint(tf.constant(["EWR_X_IAH"]), method="farmhash64").numpy()[0]
    assert int.from_bytes(fp.tobytes(), "little") % 1024 == ids[0]
