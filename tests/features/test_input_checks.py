"""Driver-side input checks of issue #20, before any pipeline: Parquet column types, a
duplicated CSV header name, tables without data rows. Each refusal names the file (or
table) and the column, and the feature job exits 2 with nothing written."""
import dataclasses
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_jobs.tabular import reading
from tests.conftest import feature_job_main
from tests.features.test_integrity import SCHEMA, TABLES

PLANES = dataclasses.replace(SCHEMA.tables["planes"], format="parquet", path="planes*.parquet")


def _planes_parquet(path, **override):
    cols = {"tailnum": pa.array(["N1", "N2"]), "year": pa.array([2000, 2001], pa.int32()),
            "type": pa.array(["a", "b"]), "manufacturer": pa.array(["m", "m"]),
            "model": pa.array(["x", "y"]), "engines": pa.array([2, 2], pa.int64()),
            "seats": pa.array([100, 150], pa.uint16()), "speed": pa.array([1, 2], pa.int64()),
            "engine": pa.array(["t", "t"]).dictionary_encode()}
    pq.write_table(pa.table({**cols, **override}), path)
    return path


def test_parquet_columns_of_compatible_types_pass(tmp_path):
    path = _planes_parquet(tmp_path / "planes.parquet")  # int32/uint16 ints, int as float
    assert reading.check_inputs(str(tmp_path), [PLANES]) == {"planes": [str(path)]}


def test_parquet_column_types_are_checked_against_the_schema(tmp_path):
    path = _planes_parquet(tmp_path / "planes.parquet",
                           engines=pa.array([True, False]), model=pa.array([1, 2]),
                           speed=pa.array(["fast", "slow"]))
    with pytest.raises(reading.InputError) as e:
        reading.check_inputs(str(tmp_path), [PLANES])
    assert str(e.value) == (
        f"input files do not match the schema:\n  {path}: table 'planes': column type(s) "
        "differ from the schema: 'model' declared string, stored as int64; 'engines' "
        "declared int64, stored as bool; 'speed' declared float64, stored as string")


def test_a_duplicated_csv_header_name_is_refused(flights_slice, tmp_path):
    lines = (flights_slice / "planes.csv").read_bytes().splitlines(keepends=True)
    dup = tmp_path / "planes.csv"  # the header names `seats` twice; one row is "seats2"
    dup.write_bytes(lines[0].rstrip(b"\n") + b",seats\n"
                    + b"".join(line.rstrip(b"\n") + b",1\n" for line in lines[1:4]))
    with pytest.raises(reading.InputError) as e:
        reading.check_inputs(str(tmp_path), [SCHEMA.tables["planes"]])
    assert str(e.value) == (f"input files do not match the schema:\n  {dup}: duplicate "
                            "column name(s) in the header: 'seats' (columns 7, 10)")


@pytest.mark.parametrize("content", [b"", b"origin,year\n", b"origin,year\n\n\r\n  \n"])
def test_a_lookup_table_without_rows_stops_the_job(flights_slice, tmp_path, capsys, content):
    raw = tmp_path / "raw"
    shutil.copytree(flights_slice, raw)
    header = (raw / "weather.csv").read_bytes().splitlines(keepends=True)[0]
    (raw / "weather.csv").write_bytes(header + content[len(b"origin,year\n"):]
                                      if content else b"")
    code, stderr = feature_job_main(capsys, raw, tmp_path / "out")
    assert code == 2 and "Traceback" not in stderr
    assert (f"input tables without data:\n  table 'weather': no data rows in its file(s) "
            f"{raw / 'weather.csv'} (empty or only a header; set allow_empty: true") in stderr
    assert not (tmp_path / "out").exists()


def test_empty_files_beside_data_and_allow_empty_pass(tmp_path):
    flights = SCHEMA.tables["flights"]
    (tmp_path / "flights_a.csv").write_text(",".join(flights.column_names) + "\n")
    (tmp_path / "flights_b.csv").write_text("")
    with pytest.raises(reading.InputError, match="table 'flights': no data rows in its file"):
        reading.check_inputs(str(tmp_path), [flights])
    allowed = dataclasses.replace(flights, allow_empty=True)
    assert sorted(reading.check_inputs(str(tmp_path), [allowed])["flights"]) == [
        str(tmp_path / "flights_a.csv"), str(tmp_path / "flights_b.csv")]
    (tmp_path / "flights_c.csv").write_text(",".join(flights.column_names) + "\n\nx\n")
    assert len(reading.check_inputs(str(tmp_path), [flights])["flights"]) == 3


def test_empty_jsonl_and_parquet_tables_are_refused(tmp_path):
    jsonl = dataclasses.replace(SCHEMA.tables["planes"], format="jsonl", path="planes*.jsonl")
    (tmp_path / "planes.jsonl").write_text("\n \n")
    empty = _planes_parquet(tmp_path / "planes.parquet")
    pq.write_table(pq.read_table(empty).slice(0, 0), empty)
    for table, name in ((jsonl, "planes.jsonl"), (PLANES, "planes.parquet")):
        with pytest.raises(reading.InputError) as e:
            reading.check_inputs(str(tmp_path), [table])
        assert f"table 'planes': no data rows in its file(s) {tmp_path / name}" in str(e.value)


def test_all_tables_pass_on_the_flights_slice(flights_slice):
    assert set(reading.check_inputs(str(flights_slice), TABLES)) == {"flights", "weather", "planes"}
