import json

import pyarrow as pa
import pytest

from beam_jobs.tabular import records
from beam_jobs.tabular.csvsplit import CsvSplitter
from mlbatch.schema import ColumnSpec, TableSpec

TABLE = TableSpec(
    name="t", path="t.csv", format="csv", null_tokens=("NA", ""),
    columns=(ColumnSpec("id", "int64", required=True, min=0),
             ColumnSpec("x", "float64", min=-10, max=10),
             ColumnSpec("name", "string", required=True)))
HEADER = ["id", "x", "name"]


def _records(lines, first_line=2):
    """Data lines as whole records, numbered from first_line (line 1 = the header)."""
    return CsvSplitter(next_line=first_line).feed(list(lines))


def _parse(lines, header=HEADER):
    chunk, dead = records.parse_csv_chunk(TABLE, "s.csv", header, _records(lines))
    batch, dead2 = records.validate_chunk(TABLE, chunk)
    return batch, dead + dead2


def test_valid_rows_are_typed_with_lineage():
    batch, dead = _parse([b"1,2.5,a\n", b"2,NA,b\r\n", b'3,,"c, d"\n'])
    assert dead == []
    assert batch.schema == records.typed_schema(TABLE)
    assert batch.column("id").to_pylist() == [1, 2, 3]
    assert batch.column("x").to_pylist() == [2.5, None, None]
    assert batch.column("name").to_pylist() == ["a", "b", "c, d"]
    assert batch.column(records.LINE_COL).to_pylist() == [2, 3, 4]


@pytest.mark.parametrize("line, reason", [
    (b"1,2.5\n", "expected 3 fields, got 2"),  # missing column / truncated line
    (b"1,2.5,a,extra\n", "expected 3 fields, got 4"),  # extra column
    (b"1,abc,a\n", "x: not a finite number: 'abc'"),
    (b"1,inf,a\n", "x: not a finite number: 'inf'"),
    (b"1.5,1,a\n", "id: not an integer: '1.5'"),
    (b"1,11,a\n", "x: '11' above maximum 10"),
    (b"-1,1,a\n", "id: '-1' below minimum 0"),
    (b"NA,NA,NA\n", "id: missing required value; name: missing required value"),
    (b",,\n", "id: missing required value; name: missing required value"),
    (b"1,2,caf\xe9\n", "invalid UTF-8 at byte 7"),
    (b"\n", "blank line"),
    (b"1,2,a\x00b\n", "NUL byte at byte 5"),
    (b'1,2,"' + b"x" * 200_000 + b'"\n', "malformed CSV: field larger than field limit (131072)"),
])
def test_bad_rows_become_dead_letters_with_reason(line, reason):
    batch, dead = _parse([b"5,1,ok\n", line])
    assert batch.num_rows == 1
    assert len(dead) == 1
    assert dead[0]["reason"] == reason
    assert dead[0]["line"] == 3 and dead[0]["source"] == "s.csv" and dead[0]["table"] == "t"


def test_header_lacking_a_declared_column_rejects_every_row():
    batch, dead = _parse([b"1,a\n", b"2,b\n"], header=["id", "name"])
    assert batch.num_rows == 0
    assert [d["reason"] for d in dead] == ["file header lacks declared column(s) ['x']"] * 2


def test_jsonl_records():
    chunk, dead = records.parse_jsonl_chunk(TABLE, "s.jsonl", [
        json.dumps({"id": 1, "x": 0.5, "name": "a", "other": 1}).encode() + b"\n",
        b"[1, 2]\n", b"{not json\n", json.dumps({"id": "zz", "name": "b"}).encode()], 1)
    batch, dead2 = records.validate_chunk(TABLE, chunk)
    assert batch.column("id").to_pylist() == [1]
    reasons = sorted(d["reason"] for d in dead + dead2)
    assert reasons[0] == "JSON record is not an object"
    assert reasons[1].startswith("id: not a finite number: 'zz'")
    assert reasons[2].startswith("invalid JSON")


def test_parquet_batch_with_missing_column():
    rb = pa.record_batch({"id": [1, 2], "name": ["a", "b"]})
    chunk, dead = records.chunk_from_arrow(TABLE, "f.parquet", rb, 1)
    assert len(chunk) == 0 and [d["line"] for d in dead] == [1, 2]
    assert "lacks declared column(s) ['x']" in dead[0]["reason"]


@pytest.mark.parametrize("lines", [
    [b"1,2.5,a\n", b"2,NA,b\r\n", b'3,,"c, d"\n'],
    [b"1,2.5,a\n", b"x,1,b\n"],            # bad number: fast path declines
    [b"1,2.5,a\n", b"\n", b"2,1,b\n"],     # blank line
    [b"1,2.5,a\n", b"2,11,b\n"],           # out of range
    [b"1,2.5,caf\xe9\n"],                  # invalid UTF-8
    [b"1,2.5\n"],                          # missing field
    [b"NA,1,a\n"],                         # required value missing
    [b'1,2.5,"a\n', b'b"\n', b"2,1,c\n"],    # quoted line break: one record
    [b'1,2.5,"a""b"\r', b"2,1,c\r"],          # escaped quote, CR-only line ends
    [b"1,2.5,a\x00\n"],                      # NUL byte
])
def test_fast_path_agrees_with_exact_path_or_declines(lines):
    fast = records.fast_csv_chunk(TABLE, "s.csv", HEADER, _records(lines))
    exact, dead = _parse(lines)
    if dead:
        assert fast is None
    else:
        assert fast is not None and fast.equals(exact)


def test_quoted_line_break_keeps_every_record_on_its_own_first_line():
    lines = [b"1,2.5,a\n", b'2,1,"b\n', b'c"\n', b"3,x,d\n", b'4,1,"e""\r\n', b'f",oops\r\n',
             b"5,1,g\n"]
    batch, dead = _parse(lines)
    assert batch.column("id").to_pylist() == [1, 2, 5]
    assert batch.column("name").to_pylist() == ["a", "b\nc", "g"]
    assert batch.column(records.LINE_COL).to_pylist() == [2, 3, 8]
    assert sorted((d["line"], d["raw"], d["reason"]) for d in dead) == [
        (5, "3,x,d", "x: not a finite number: 'x'"),
        (6, '4,1,"e""\r\nf",oops', "expected 3 fields, got 4")]
    fast = records.fast_csv_chunk(TABLE, "s.csv", HEADER, _records([lines[i] for i in (0, 1, 2, 6)]))
    assert fast.column(records.LINE_COL).to_pylist() == [2, 3, 5]
    assert fast.column("name").to_pylist() == ["a", "b\nc", "g"]


def test_parse_csv_lines_dead_letters_an_open_quote_at_the_end():
    chunk, dead = records.parse_csv_lines(TABLE, "s.csv", HEADER,
                                          [b"1,1,a\n", b'2,1,"b\n', b"3,1,c\n"])
    assert chunk.lines == [2] and [(d["line"], d["raw"]) for d in dead] == [(3, '2,1,"b\n3,1,c\n')]
    assert dead[0]["reason"].startswith("unterminated quoted field: the record starting on line 3")
