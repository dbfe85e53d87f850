"""TestPipeline tests of the feature job's DoFns (no files)."""
import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.tabular import records
from beam_jobs.features import transforms
from beam_jobs.tabular import reading
from mlbatch.schema import load_schema
from tests.tabular.test_records import TABLE
from tests.mlbatch.test_schema import FLIGHTS

RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def test_validate_chunk_fn_splits_valid_and_dead():
    chunk, _ = records.parse_csv_lines(TABLE, "s.csv", ["id", "x", "name"],
                                       [b"1,2,a\n", b"x,2,b\n", b"3,NA,c\n"], 2)
    with TestPipeline(runner=RUNNER) as p:
        out = (p | beam.Create([chunk])
               | beam.ParDo(reading.ValidateChunkFn(TABLE)).with_outputs(
                   reading.DEAD, main="valid"))
        ids = out.valid | beam.FlatMap(lambda b: b.column("id").to_pylist())
        reasons = out[reading.DEAD] | beam.Map(lambda d: (d["line"], d["reason"]))
        assert_that(ids, equal_to([1, 3]), label="CheckValid")
        assert_that(reasons, equal_to([(3, "id: not a finite number: 'x'")]), label="CheckDead")


def test_prepare_examples_fn_routes_rows():
    schema = load_schema(FLIGHTS)
    flights = schema.tables["flights"]
    header = [c.name for c in flights.columns]
    lines = [b"2013,1,1,517,515,2,830,819,11,UA,1545,N1,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z\n",
             b"2013,1,1,517,515,2,NA,819,NA,UA,1546,N2,EWR,IAH,NA,1400,5,15,2013-01-01T10:00:00Z\n",
             b"2013,1,2,517,515,2,830,819,45,AA,7,N1,JFK,LAX,227,2475,5,15,2013-01-02T10:00:00Z\n"]
    chunk, _ = records.parse_csv_lines(flights, "f.csv", header, lines, 2)
    batch, dead = records.validate_chunk(flights, chunk)
    assert dead == []
    weather = records.typed_schema(schema.tables["weather"]).empty_table()
    planes = records.typed_schema(schema.tables["planes"]).empty_table()
    with TestPipeline(runner=RUNNER) as p:
        lookups = {
            "weather": beam.pvalue.AsSingleton(p | "W" >> beam.Create([weather])),
            "planes": beam.pvalue.AsSingleton(p | "P" >> beam.Create([planes]))}
        out = (p | beam.Create([batch]) | beam.ParDo(
            transforms.PrepareExamplesFn(schema), **lookups).with_outputs(
                transforms.EVAL, transforms.EXCLUDED, transforms.COUNTS, main="train"))
        both = ((out.train, out[transforms.EVAL]) | beam.Flatten()
                | beam.FlatMap(lambda b: zip(
                    [i[0].decode() for i in b.column("example_id").to_pylist()],
                    [v[0] for v in b.column("delayed").to_pylist()])))
        assert_that(both, equal_to([("f.csv:2", 0.0), ("f.csv:4", 1.0)]), label="CheckLabels")
        assert_that(out[transforms.EXCLUDED]
                    | beam.FlatMap(lambda t: t.column("example_id").to_pylist()),
                    equal_to(["f.csv:3"]), label="CheckExcluded")
        totals = out[transforms.COUNTS] | beam.CombinePerKey(sum)
        assert_that(totals | beam.Filter(lambda kv: kv[0] == "excluded"),
                    equal_to([("excluded", 1)]), label="CheckCounts")


def test_feature_stats_fn():
    t1 = pa.table({"a": pa.array([1.0, 3.0], pa.float32()), "c": pa.array([0, 1])})
    t2 = pa.table({"a": pa.array([5.0], pa.float32()), "c": pa.array([1])})
    fn = transforms.FeatureStatsFn(["a"], ["c"])
    acc = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), t1),
                                 fn.add_input(fn.create_accumulator(), t2)])
    out = fn.extract_output(acc)
    assert out["a"]["mean"] == 3.0 and out["a"]["min"] == 1.0 and out["a"]["max"] == 5.0
    assert abs(out["a"]["stddev"] - (8 / 3) ** 0.5) < 1e-9
    assert out["c"]["top_values"] == [{"id": 1, "count": 2}, {"id": 0, "count": 1}]


def test_cross_stats_fn_counts_collisions_and_rare_values():
    # fingerprints 10, 11 share bucket 0; 12 is alone in bucket 1; fingerprint 12 is rare
    b = pa.record_batch({"cross_x": pa.array([[0], [0], [0], [0], [1]], pa.list_(pa.int64())),
                         "__fingerprint_x": pa.array([[10], [10], [11], [11], [12]],
                                                     pa.list_(pa.int64()))})
    fn = transforms.CrossStatsFn([("cross_x", "__fingerprint_x", 4)], rare_threshold=2)
    out = fn.extract_output(fn.add_input(fn.create_accumulator(), b))["cross_x"]
    assert out["distinct_values"] == 3 and out["buckets_used"] == 2
    assert out["bucket_collisions"] == 1
    assert abs(out["colliding_value_share"] - 2 / 3) < 1e-9
    assert abs(out["rare_value_share"] - 1 / 3) < 1e-9 and abs(out["rare_row_share"] - 0.2) < 1e-9
