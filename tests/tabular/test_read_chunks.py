"""ReadChunksFn on real files: every record keeps its own line across chunk boundaries."""
import dataclasses
import json

import pyarrow as pa
import pytest

from beam_jobs.tabular import records
from beam_jobs.tabular.reading import DEAD, FILES, ReadChunksFn
from tests.tabular.test_records import TABLE


def _read(table, path, chunk_rows):
    """(line -> id of every valid or raw row, dead letters, the FILES record)."""
    rows, dead, files = {}, [], []
    for out in ReadChunksFn(table, chunk_rows).process(str(path)):
        if isinstance(out, pa.RecordBatch):
            rows.update(zip(out.column(records.LINE_COL).to_pylist(), out.column("id").to_pylist()))
        elif isinstance(out, records.RawChunk):
            batch, bad = records.validate_chunk(table, out)
            rows.update(zip(batch.column(records.LINE_COL).to_pylist(),
                            batch.column("id").to_pylist()))
            dead += bad
        else:
            assert out.tag in (DEAD, FILES)
            (dead if out.tag == DEAD else files).append(out.value)
    return rows, sorted((d["line"], d["reason"]) for d in dead), files


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_csv_records_keep_their_first_line_whatever_the_chunking(tmp_path, chunk_rows):
    path = tmp_path / "t.csv"
    path.write_bytes(b'id,x,name\n1,1,a\n2,1,"b\nc"\n3,far,d\n4,1,"e""\r\n\r\nf"\n5,1,g\r6,1,h\n'
                     b'7,1,"i')
    rows, dead, files = _read(TABLE, path, chunk_rows)
    assert rows == {2: 1, 3: 2, 6: 4, 9: 5, 10: 6}
    assert dead == [(5, "x: not a finite number: 'far'"),
                    (11, ("unterminated quoted field: the record starting on line 11 runs "
                          "to the end of the file (1 line)"))]
    assert files == [{"table": "t", "path": str(path), "records": 7, "lines": 10}]


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_jsonl_lines_are_unaffected(tmp_path, chunk_rows):
    table = dataclasses.replace(TABLE, format="jsonl", path="t.jsonl")
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"id": 1, "x": 1, "name": 'a "quoted"\nvalue'}).encode(),
        b'{"id": 2, "x": 1, "name": "\\"open quote"}', b"", b"{not json",
        json.dumps({"id": 4, "x": 1, "name": "d"}).encode()]) + b"\n")
    rows, dead, files = _read(table, path, chunk_rows)
    assert rows == {1: 1, 2: 2, 5: 4}
    assert [d[0] for d in dead] == [3, 4] and dead[0][1] == "blank line"
    assert files == [{"table": "t", "path": str(path), "records": 5, "lines": 5}]
