"""The schema's ``partitions`` declaration (docs/periods.md): the Hive folder key and the
period granularity of the raw data; a bad value is refused naming the field."""
from __future__ import annotations

import pytest

from mlbatch.schema import PartitionSpec, SchemaError, load_schema
from tests.conftest import REPO_ROOT

FLIGHTS = (REPO_ROOT / "schemas" / "flights.yaml").read_text()
DECLARED = "partitions: {key: period, granularity: month}"


def _load(tmp_path, replacement: str):
    assert DECLARED in FLIGHTS
    path = tmp_path / "flights.yaml"
    path.write_text(FLIGHTS.replace(DECLARED, replacement))
    return load_schema(path)


def test_flights_declares_monthly_period_folders_and_the_default_is_any_granularity(tmp_path):
    assert load_schema(REPO_ROOT / "schemas" / "flights.yaml").partitions == PartitionSpec(
        key="period", granularity="month")
    assert _load(tmp_path, "").partitions == PartitionSpec(key="period", granularity=None)
    assert _load(tmp_path, "partitions: {key: dt, granularity: day}").partitions == (
        PartitionSpec(key="dt", granularity="day"))


@pytest.mark.parametrize("replacement, message", [
    ("partitions: {granularity: week}",
     "partitions.granularity: 'week' is not one of ('month', 'day')"),
    ("partitions: {key: 'a/b'}", "partitions.key: 'a/b' is not a folder key"),
    ("partitions: {by: month}", "partitions: unknown field(s) ['by']"),
])
def test_a_bad_declaration_names_the_field(tmp_path, replacement, message):
    with pytest.raises(SchemaError) as err:
        _load(tmp_path, replacement)
    assert message in str(err.value)
