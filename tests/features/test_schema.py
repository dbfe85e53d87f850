from pathlib import Path

import pytest
import yaml

from mlbatch.schema import SchemaError, load_schema

FLIGHTS = Path(__file__).resolve().parents[2] / "schemas" / "flights.yaml"


def test_flights_schema_derives_features_and_inputs():
    s = load_schema(FLIGHTS)
    assert s.main == "flights"
    assert s.label.name == "delayed" and s.label.task == "binary_classification"
    assert "cross_route" in s.feature_names and "distance_bucket" in s.feature_names
    # joined and derived columns exist after preparation, typed
    cols = s.prepared_columns()
    assert cols["wx_temp"] == "float64" and cols["plane_age"] == "int64"
    assert cols["day_of_week"] == "int64"
    # the label source is not a transform input (serving needs no label)
    assert "arr_delay" not in s.transform_inputs()
    # a cross over a bucket feature reads the bucket's numeric source
    assert "distance" in s.transform_inputs()


def write_schema(tmp_path, mutate):
    """The flights schema with `mutate` applied to its raw YAML, written to tmp_path."""
    raw = yaml.safe_load(FLIGHTS.read_text())
    mutate(raw)
    p = tmp_path / "schema.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["features"]["numeric"].append({"column": "no_such_col"}),
     "features.numeric[10].column: unknown column 'no_such_col'"),
    (lambda r: r["features"]["crosses"].append(
        {"name": "bad", "columns": ["carrier", "missing_col"], "hash_buckets": 8}),
     "cross 'bad' uses missing column 'missing_col'"),
    (lambda r: r["features"]["crosses"].append(
        {"name": "f", "columns": ["carrier", "distance"], "hash_buckets": 8}),
     "'distance' is a float column: cross its bucket feature"),
    (lambda r: r["features"]["crosses"].append(
        {"name": "one", "columns": ["carrier"], "hash_buckets": 8}),
     "a cross takes 2 or 3 columns, got 1"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(type="integer"),
     "tables.flights.columns.month.type: 'integer' is not one of"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(nullable=True),
     "tables.flights.columns.month: unknown field(s) ['nullable']"),
    (lambda r: r["joins"][0].update(keys=["origin"]),
     "joins[0].keys: must equal the declared key ['origin', 'time_hour']"),
    (lambda r: r["label"].update(column="carrier"), "label.column: 'carrier' is not a numeric"),
    (lambda r: r["split"].update(eval_fraction=1.5), "split.eval_fraction: must be in (0, 1)"),
    (lambda r: r.update(main="nope"), "main: 'nope' is not a declared table"),
    (lambda r: r["features"]["numeric"][0].update(scale="log"), "scale: 'log' not in"),
    (lambda r: r.pop("label"), "missing required field(s) ['label']"),
])
def test_schema_errors_name_the_field(tmp_path, mutate, message):
    with pytest.raises(SchemaError) as e:
        load_schema(write_schema(tmp_path, mutate))
    assert message in str(e.value)
    assert "schema.yaml" in str(e.value)


def test_missing_schema_file(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        load_schema(tmp_path / "nope.yaml")
