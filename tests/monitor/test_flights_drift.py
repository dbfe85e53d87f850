"""The monitor's statistics and verdicts on the real flights table (numpy layer, in memory)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from beam_jobs.monitor import stats
from tests.monitor.conftest import month


@pytest.fixture(scope="module")
def january(flights_year) -> pa.Table:
    return month(flights_year, 1)


@pytest.fixture(scope="module")
def columns(flights_schema) -> list[stats.Column]:
    return stats.raw_columns(flights_schema)


def _halves(t: pa.Table, seed: int) -> tuple[pa.Table, pa.Table]:
    mask = np.random.default_rng(seed).random(t.num_rows) < 0.5
    return t.filter(pa.array(mask)), t.filter(pa.array(~mask))


def test_raw_columns_follow_the_schema(columns):
    kinds = {c.name: c.kind for c in columns}
    assert kinds["distance"] == kinds["wx_temp"] == kinds["sched_dep_time"] == "numeric"
    assert kinds["carrier"] == kinds["month"] == kinds["dep_hour"] == "categorical"
    assert kinds["tailnum"] == "categorical"
    assert {c.threshold for c in columns} == {0.3}
    assert len(columns) == 19


def test_random_halves_of_one_month_flag_at_most_five_percent(january, columns):
    """20 random splits of January into halves: the same distribution, so every flag is a
    false alarm."""
    flagged = []
    for seed in range(20):
        a, b = _halves(january, seed)
        flagged += [r.name for r in stats.compare_tables(a, b, columns) if r.breach]
    assert len(flagged) <= 0.05 * 20 * len(columns), flagged


def test_january_vs_july_flags_the_weather_and_keeps_carrier(flights_year, columns):
    results = {r.name: r for r in stats.compare_tables(month(flights_year, 1),
                                                       month(flights_year, 7), columns)}
    assert results["wx_temp"].breach and results["wx_dewp"].breach
    assert results["wx_temp"].distance > 0.9
    assert not results["carrier"].breach
    assert results["carrier"].distance < 0.05
    assert results["month"].breach  # every July flight is a value January never saw


def _scaled(t: pa.Table, factor: float) -> pa.Table:
    return t.set_column(t.schema.get_field_index("distance"), "distance",
                        pc.multiply(t.column("distance"), factor))


def test_scaled_distance_is_flagged_by_name(january, columns):
    a, b = _halves(january, 0)
    results = {r.name: r for r in stats.compare_tables(a, _scaled(b, 4.0), columns)}
    assert [n for n, r in results.items() if r.breach] == ["distance"]
    assert results["distance"].distance == pytest.approx(0.4818, abs=1e-4)
    # doubled: JS 0.15, far above its null but below the default threshold; a schema
    # threshold of 0.1 for the feature flags it
    doubled = stats.compare_tables(a, _scaled(b, 2.0), columns)[0]
    assert doubled.name == "distance" and not doubled.breach
    assert doubled.distance == pytest.approx(0.1504, abs=1e-4)
    strict = [dataclasses.replace(c, threshold=0.1) if c.name == "distance" else c
              for c in columns]
    assert [r.name for r in stats.compare_tables(a, _scaled(b, 2.0), strict) if r.breach] == [
        "distance"]


def test_unseen_carrier_is_flagged_by_name(january, columns):
    a, b = _halves(january, 1)
    swap = np.random.default_rng(1).random(b.num_rows) < 0.4
    carrier = pc.if_else(pa.array(swap), "ZZ", b.column("carrier"))
    flagged = {r.name: r for r in stats.compare_tables(
        a, b.set_column(b.schema.get_field_index("carrier"), "carrier", carrier), columns)
        if r.breach}
    assert list(flagged) == ["carrier"]
    assert flagged["carrier"].distance == pytest.approx(swap.mean(), abs=0.01)


def test_drift_thresholds_come_from_the_schema(tmp_path):
    import yaml

    from mlbatch.schema import SchemaError, load_schema
    from tests.monitor.conftest import SCHEMA_FILE

    raw = yaml.safe_load(SCHEMA_FILE.read_text())
    raw["features"]["numeric"][0]["drift_threshold"] = 0.05  # distance_z
    raw["features"]["crosses"][0]["drift_threshold"] = 0.1  # route: origin x dest
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(raw))
    schema = load_schema(path)
    raw_t = {c.name: c.threshold for c in stats.raw_columns(schema)}
    assert (raw_t["distance"], raw_t["origin"], raw_t["dest"], raw_t["carrier"]) == (
        0.05, 0.1, 0.1, 0.3)
    raw["features"]["numeric"][0]["drift_threshold"] = 2
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SchemaError, match=r"features.numeric\[0\].drift_threshold: must be a "
                                          r"share in \[0, 1\], got 2"):
        load_schema(path)
