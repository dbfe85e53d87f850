"""Values typed exactly (issue #20): integers never through float64, numbers only in their
plain decimal form, JSON objects/arrays/booleans never stored as text. Each case runs
through ReadChunksFn on a real file, so a CSV chunk takes Arrow's fast path when it can
and the exact path otherwise: both must give the same outcome."""
import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.tabular.test_read_chunks import _read
from tests.tabular.test_records import TABLE

CSV_CASES = [  # (id field, x field) -> stored (id, x), or the dead letter's reason
    (("9007199254740993", "1"), (9007199254740993, 1.0)),  # 2^53 + 1: not rounded
    (("9223372036854775807", "1"), (9223372036854775807, 1.0)),  # int64 max
    (("99999999999999999999", "1"),
     "id: integer out of the int64 range: '99999999999999999999'"),
    (("9223372036854775808", "1"), "id: integer out of the int64 range: '9223372036854775808'"),
    (("-9223372036854775809", "1"),
     "id: integer out of the int64 range: '-9223372036854775809'"),
    (("1e400", "1"), "id: integer out of the int64 range: '1e400'"),
    (("+5", "+1.5"), (5, 1.5)),
    ((" 7 ", " 2 "), (7, 2.0)),
    (("3.0", "1e0"), (3, 1.0)),
    (("0x10", "1"), "id: not a finite number: '0x10'"),  # Arrow alone would read 16
    (("1_000", "1"), "id: not a finite number: '1_000'"),
    (("1", "0x1p0"), "x: not a finite number: '0x1p0'"),
    (("1", "1e400"), "x: not a finite number: '1e400'"),
    (("1", "NaN"), "x: not a finite number: 'NaN'"),
    (("1", "-inf"), "x: not a finite number: '-inf'"),
    (("1", "Infinity"), "x: not a finite number: 'Infinity'"),
]


def _outcomes(table, path, chunk_rows=1000):
    rows, dead, _ = _read(table, path, chunk_rows)
    return rows, dict(dead)


def _typed(table, path):
    """line -> (id, x, name) of the valid rows (validated as the job does)."""
    from beam_jobs.tabular import records
    from beam_jobs.tabular.reading import ReadChunksFn

    out = {}
    for item in ReadChunksFn(table, 1000).process(str(path)):
        if isinstance(item, records.RawChunk):
            item, _ = records.validate_chunk(table, item)
        if isinstance(item, pa.RecordBatch):
            for r in item.to_pylist():
                out[r[records.LINE_COL]] = (r["id"], r["x"], r["name"])
    return out


@pytest.mark.parametrize("fields, expected", CSV_CASES, ids=[c[0][0] + "|" + c[0][1]
                                                             for c in CSV_CASES])
def test_csv_numbers_are_exact_or_one_dead_letter(tmp_path, fields, expected):
    # the case between clean rows: the chunk would otherwise take Arrow's fast path
    path = tmp_path / "t.csv"
    path.write_text(f"id,x,name\n1,1,a\n{fields[0]},{fields[1]},b\n2,2,c\n")
    typed = _typed(TABLE, path)
    _, dead = _outcomes(TABLE, path)
    if isinstance(expected, str):
        assert dead == {3: expected} and sorted(typed) == [2, 4]
    else:
        assert dead == {} and typed[3] == (*expected, "b")
        assert typed[2] == (1, 1.0, "a") and typed[4] == (2, 2.0, "c")


JSONL = dataclasses.replace(TABLE, format="jsonl")
JSON_CASES = [  # one JSON record -> stored (id, x, name), or the dead letter's reason
    ('{"id": 9007199254740993, "name": "a"}', (9007199254740993, None, "a")),
    ('{"id": 99999999999999999999, "name": "a"}',
     "id: integer out of the int64 range: 99999999999999999999"),
    ('{"id": 3.0, "x": 0.1, "name": "a"}', (3, 0.1, "a")),
    ('{"id": 3.5, "name": "a"}', "id: not an integer: 3.5"),
    ('{"id": 1, "x": 1e400, "name": "a"}', "x: not a finite number: 1E+400"),
    ('{"id": 1, "x": NaN, "name": "a"}', "x: not a finite number: nan"),
    ('{"id": 1, "x": -Infinity, "name": "a"}', "x: not a finite number: -inf"),
    ('{"id": true, "name": "a"}', "id: expected an integer, got a JSON boolean"),
    ('{"id": 1, "x": [1], "name": "a"}', "x: expected a number, got a JSON array"),
    ('{"id": 1, "name": {"first": "a"}}', "name: expected a string, got a JSON object"),
    ('{"id": 1, "name": ["a", "b"]}', "name: expected a string, got a JSON array"),
    ('{"id": 1, "name": false}', "name: expected a string, got a JSON boolean"),
    ('{"id": 1, "name": 1.50}', (1, None, "1.50")),  # a number as written
    ('{"id": "12", "x": "-2.5", "name": "a"}', (12, -2.5, "a")),
]


@pytest.mark.parametrize("record, expected", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_jsonl_values_are_exact_or_one_dead_letter(tmp_path, record, expected):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": 1, "name": "ok"}) + "\n" + record + "\n")
    typed = _typed(JSONL, path)
    _, dead = _outcomes(JSONL, path)
    if isinstance(expected, str):
        assert dead == {2: expected} and sorted(typed) == [1]
    else:
        assert dead == {} and typed[2] == expected


def test_parquet_integers_are_exact_and_uint64_overflow_is_a_dead_letter(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({
        "id": pa.array([9007199254740993, 2**64 - 1, 5], pa.uint64()),
        "x": pa.array([1.0, 2.0, float("nan")]), "name": ["a", "b", "c"]}), path)
    typed = _typed(dataclasses.replace(TABLE, format="parquet"), path)
    _, dead = _outcomes(dataclasses.replace(TABLE, format="parquet"), path)
    assert typed == {1: (9007199254740993, 1.0, "a"), 3: (5, None, "c")}  # NaN: missing
    assert dead == {2: "id: integer out of the int64 range: 18446744073709551615"}
