import dataclasses

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from beam_jobs.tabular import prepare, records, serving
from beam_jobs.tabular.records import LINE_COL, SOURCE_COL
from mlbatch.schema import JoinSpec, load_schema
from tests.mlbatch.test_schema import FLIGHTS, write_schema


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


def test_the_feature_job_and_serving_share_one_label_function(schema):
    """Serving's label column (in label units, null where unknown) and the feature job's
    (float32, excluded where unknown) come from the same prepare.label_values."""
    t = pa.table({"arr_delay": pa.array([16.0, 15.0, None, -3.0, 200.0]),
                  SOURCE_COL: ["f.csv"] * 5, LINE_COL: [2, 3, 4, 5, 6]})
    assert prepare.label_values(t, schema).to_pylist() == [1.0, 0.0, None, 0.0, 1.0]
    prepared, reasons = serving.prepare_for_serving(t, {}, dataclasses.replace(
        schema, joins=(), derived=(), filters=()))
    assert prepared.column(serving.LABEL).to_pylist() == [1.0, 0.0, None, 0.0, 1.0]
    assert not hasattr(serving, "label_values")


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


TAXI = """
name: taxi
tables:
  trips:
    path: trips.csv
    columns:
      pickup: {type: string, required: true}
      fare: float64
      tips: float64
      company: string
main: trips
derived:
  - {name: pickup_hour, expr: "hour(timestamp(pickup))"}
  - {name: log_fare, expr: "log1p(fare)"}
  - {name: generous, expr: "tips >= 2"}
filters:
  - "fare > 0"
  - "pickup_hour < 23"
label: {name: big_tip, task: binary_classification, expr: "tips > 0.2 * fare"}
split: {by: row, eval_fraction: 0.5, salt: taxi}
features:
  numeric: [{column: log_fare}, {column: generous}]
  vocabularies: [{column: company}]
  crosses: [{name: co_x_hour, columns: [company, pickup_hour], hash_buckets: 16}]
"""
TAXI_CSV = [b"2020-01-01 05:10:00,10.0,2.5,A\n",  # line 2: tips 25 % -> 1
            b"2020-01-01 06:00:00,10.0,1.0,B\n",  # line 3: 10 % -> 0
            b"2020-01-01 07:00:00,0.0,0.0,A\n",  # line 4: fare > 0 is false
            b"2020-01-01 08:00:00,,1.0,A\n",  # line 5: fare missing: filter is null
            b"2020-01-01 23:30:00,5.0,1.0,B\n",  # line 6: second filter false
            b"2020-01-02 01:00:00,8.0,,\n"]  # line 7: label source missing


def taxi_batch(tmp_path, schema_text: str = TAXI, source: str = "/data/a/trips.csv"):
    path = tmp_path / "taxi.yaml"
    path.write_text(schema_text)
    schema = load_schema(path)
    table = schema.main_table
    chunk, dead = records.parse_csv_lines(table, source, table.column_names, TAXI_CSV, 2)
    batch, invalid = records.validate_chunk(table, chunk)
    assert dead == [] and invalid == []
    return schema, pa.Table.from_batches([batch])


def test_prepare_filters_labels_and_row_split(tmp_path):
    schema, t = taxi_batch(tmp_path)
    prepared, excluded = prepare.prepare(t, {}, schema)
    assert prepared.column("example_id").to_pylist() == ["/data/a/trips.csv:2",
                                                         "/data/a/trips.csv:3"]
    assert prepared.column("big_tip").to_pylist() == [1.0, 0.0]
    assert prepared.column("pickup_hour").to_pylist() == [5, 6]
    assert prepared.column("log_fare").to_pylist() == [np.log1p(10.0)] * 2
    assert dict(zip(excluded.column("example_id").to_pylist(),
                    excluded.column("reason").to_pylist())) == {
        "/data/a/trips.csv:4": "filter 'fare > 0' is false",
        "/data/a/trips.csv:5": "filter 'fare > 0' is null (an input is missing)",
        "/data/a/trips.csv:6": "filter 'pickup_hour < 23' is false",
        "/data/a/trips.csv:7": "label source 'tips' is missing"}
    assert prepared.num_rows + excluded.num_rows == t.num_rows  # never a silent drop
    # a boolean derived column reaches tf.Transform as int64 0/1
    assert schema.column_types()["generous"] == "bool"
    assert schema.prepared_columns()["generous"] == "int64"
    tfxio = prepare.to_tfxio_batch(prepared, schema)
    assert tfxio.column("generous").to_pylist() == [[1], [0]]
    assert tfxio.column("generous").type == pa.large_list(pa.int64())
    # by: row hashes the file name and line: the same split wherever the file lives,
    # in any batch, and the same as hashing "trips.csv\x1f<line>" by hand
    _, moved = taxi_batch(tmp_path, source="gs://bucket/x/trips.csv")
    assert (prepare.split_is_eval(t, schema) == prepare.split_is_eval(moved, schema)).all()
    assert (prepare.split_is_eval(t.slice(3), schema) == prepare.split_is_eval(t, schema)[3:]).all()
    by_hand = prepare._hash_split([f"trips.csv\x1f{n}".encode() for n in range(2, 8)],
                                  schema.split)
    assert prepare.split_is_eval(t, schema).tolist() == by_hand.tolist()


def test_split_by_content_hashes_every_main_column(tmp_path):
    schema, t = taxi_batch(tmp_path, TAXI.replace("by: row", "by: content"))
    assert schema.split.key == ("pickup", "fare", "tips", "company")
    rows = [r.encode() for r in ["2020-01-01 05:10:00\x1f10.0\x1f2.5\x1fA",
                                 "2020-01-01 06:00:00\x1f10.0\x1f1.0\x1fB"]]
    assert prepare.split_is_eval(t.slice(0, 2), schema).tolist() == \
        prepare._hash_split(rows, schema.split).tolist()


def test_regression_label_expression_excludes_undefined_rows(tmp_path):
    text = TAXI.replace('task: binary_classification, expr: "tips > 0.2 * fare"',
                        'task: regression, expr: "log(tips)"')
    text = text.replace('filters:\n  - "fare > 0"\n  - "pickup_hour < 23"\n', "")
    schema, t = taxi_batch(tmp_path, text)
    prepared, excluded = prepare.prepare(t, {}, schema)
    assert prepared.column("big_tip").to_pylist() == pytest.approx(
        [np.log(2.5), 0.0, 0.0, 0.0], rel=1e-6)  # float32
    assert excluded.column("reason").to_pylist() == [
        ("label 'log(tips)' is undefined here (division by zero, log/sqrt out of domain, "
         "or not finite)"), "label source 'tips' is missing"]


def _legacy_numpy(t: pa.Table) -> dict:
    """The pre-expression implementation of the three legacy fns (numpy), for comparison."""
    y, m, d = (t.column(c).to_numpy() for c in ("year", "month", "day"))
    days = ((y - 1970).astype("datetime64[Y]") + (m - 1).astype("timedelta64[M]")
            ).astype("datetime64[D]") + (d - 1).astype("timedelta64[D]")
    age = t.column("year").to_numpy() - t.column("plane_year").to_numpy(zero_copy_only=False)
    return {"dep_hour": np.floor_divide(t.column("sched_dep_time").to_numpy(), 100).tolist(),
            "day_of_week": ((days.astype("int64") + 3) % 7).tolist(),
            "plane_age": [None if np.isnan(a) else int(a) for a in age]}


@pytest.mark.parametrize("form", ["legacy", "expr"])
def test_legacy_derived_fns_equal_the_evaluator(tmp_path, form):
    def legacy(raw):
        raw["derived"] = [
            {"name": "dep_hour", "fn": "floordiv", "args": ["sched_dep_time", 100]},
            {"name": "day_of_week", "fn": "day_of_week", "args": ["year", "month", "day"]},
            {"name": "plane_age", "fn": "subtract", "args": ["year", "plane_year"]}]
        raw["label"] = {"name": "delayed", "task": "binary_classification",
                        "column": "arr_delay", "op": ">", "value": 15}
    schema = load_schema(write_schema(tmp_path, legacy if form == "legacy" else lambda r: r))
    assert [d.expr.text for d in schema.derived] == [
        "sched_dep_time // 100", "day_of_week(year, month, day)", "year - plane_year"]
    assert schema.label.expr.text == "arr_delay > 15"
    n = 3000
    rng = np.random.default_rng(1)
    t = pa.table({"year": rng.integers(1990, 2030, n), "month": rng.integers(1, 13, n),
                  "day": rng.integers(1, 29, n), "sched_dep_time": rng.integers(0, 2360, n),
                  "plane_year": pa.array(rng.integers(1950, 2020, n), mask=rng.random(n) < .1)})
    out = prepare.add_derived(t, schema)
    for name, values in _legacy_numpy(t).items():
        assert out.column(name).to_pylist() == values, name
        assert out.column(name).type == pa.int64()
