"""Pure, vectorized record handling: parse raw chunks, validate them against a table.

No Beam here. A chunk of up to a few ten thousand raw records becomes one typed Arrow
RecordBatch of the valid rows plus a list of dead letters (raw record, source, line,
reason) for the others: every input record ends up in exactly one of the two.
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa

from beam_jobs.common import deadletter
from beam_jobs.tabular import values
from beam_jobs.tabular.csvsplit import CsvChunk, CsvSplitter
from mlbatch.schema import TableSpec

SOURCE_COL = "_source"
LINE_COL = "_line"
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}


def dead_letter(table: str, source: str, line: int, raw: str, reason: str,
                job: str = "features") -> dict:
    """A rejected record of a table (beam_jobs.common.deadletter's one record shape)."""
    return deadletter.record(job, source, reason, raw, table=table, line=line)


@dataclass
class RawChunk:
    """Records of one table from one source, still untyped, with where they came from."""
    table: str
    source: str
    lines: list[int] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    values: dict[str, list] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lines)


def _decode(line: bytes, table: str, source: str, lineno: int, dead: list) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        dead.append(dead_letter(table, source, lineno, line.decode("utf-8", "backslashreplace"),
                                f"invalid UTF-8 at byte {e.start}"))
        return None


def _text_lines(table: str, source: str, lines: list[bytes], linenos: Sequence[int],
                dead: list, reject: str | None = None):
    """(line number, text) of each decodable, non-blank record; the others (and every
    record, with `reject` as the reason, when given) are appended to `dead`."""
    for n, line in zip(linenos, lines):
        nul = line.find(b"\x00")
        text = _decode(line, table, source, n, dead)
        if text is None:
            continue
        text = text.rstrip("\r\n")
        if reject:
            dead.append(dead_letter(table, source, n, text, reject))
        elif nul >= 0:
            dead.append(dead_letter(table, source, n, text.replace("\x00", "\\x00"),
                                    f"NUL byte at byte {nul}"))
        elif not text.strip():
            dead.append(dead_letter(table, source, n, text, "blank line"))
        else:
            yield n, text


def parse_csv_header(line: bytes) -> list[str]:
    # The first physical line only: in a CR-only file readline() returns the whole file.
    first = re.split(r"\r\n|\r|\n", line.decode("utf-8-sig"), maxsplit=1)[0]
    return next(csv.reader([first]))


def parse_csv_chunk(table: TableSpec, source: str, header: list[str],
                    records: CsvChunk) -> tuple[RawChunk, list[dict]]:
    """Parses whole CSV records (csvsplit: each with its first line number) against the
    header."""
    dead: list[dict] = []
    chunk = RawChunk(table.name, source, values={c: [] for c in table.column_names})
    missing = [c for c in table.column_names if c not in header]
    idx = {c: header.index(c) for c in table.column_names if c in header}
    reject = f"file header lacks declared column(s) {missing}" if missing else None
    texts, linenos = [], []
    for n, text in _text_lines(table.name, source, records.raw, records.lines, dead, reject):
        texts.append(text)
        linenos.append(n)
    width = len(header)
    reader = csv.reader(texts)
    for i, (text, n) in enumerate(zip(texts, linenos)):
        try:
            fields = next(reader)
        except csv.Error as e:  # e.g. a field past csv.field_size_limit()
            dead.append(dead_letter(table.name, source, n, text, f"malformed CSV: {e}"))
            continue
        if reader.line_num != i + 1:
            raise AssertionError(f"{source}: CSV parser out of step with the record "
                                 f"splitter at line {n}")
        if len(fields) != width:
            dead.append(dead_letter(table.name, source, n, text,
                                    f"expected {width} fields, got {len(fields)}"))
            continue
        chunk.lines.append(n)
        chunk.raw.append(text)
        for c, j in idx.items():
            chunk.values[c].append(fields[j])
    return chunk, dead


def parse_csv_lines(table: TableSpec, source: str, header: list[str], lines: list[bytes],
                    first_lineno: int = 2) -> tuple[RawChunk, list[dict]]:
    """parse_csv_chunk for data lines held in memory (numbered from first_lineno): cut
    into whole records first; a quote left open at the end is one dead letter."""
    splitter = CsvSplitter(next_line=first_lineno)
    chunk, dead = parse_csv_chunk(table, source, header, splitter.feed(list(lines)))
    tail = splitter.finish()
    if tail is not None:
        dead.append(dead_letter(table.name, source, tail.line,
                                tail.raw.decode("utf-8", "backslashreplace"), tail.reason))
    return chunk, dead


def parse_jsonl_chunk(table: TableSpec, source: str, lines: list[bytes],
                      first_lineno: int) -> tuple[RawChunk, list[dict]]:
    """Parses JSON-lines records; each must be an object. Unknown keys are ignored."""
    dead: list[dict] = []
    chunk = RawChunk(table.name, source, values={c: [] for c in table.column_names})
    linenos = range(first_lineno, first_lineno + len(lines))
    for n, text in _text_lines(table.name, source, lines, linenos, dead):
        try:
            obj = json.loads(text, parse_float=Decimal)  # exact until typed
        except json.JSONDecodeError as e:
            dead.append(dead_letter(table.name, source, n, text, f"invalid JSON: {e.msg}"))
            continue
        if not isinstance(obj, dict):
            dead.append(dead_letter(table.name, source, n, text, "JSON record is not an object"))
            continue
        chunk.lines.append(n)
        chunk.raw.append(text)
        for c in table.column_names:
            chunk.values[c].append(obj.get(c))
    return chunk, dead


def chunk_from_arrow(table: TableSpec, source: str, batch: pa.RecordBatch,
                     first_row: int) -> tuple[RawChunk, list[dict]]:
    """A Parquet record batch as a RawChunk ("line" = 1-based row number in the file)."""
    n = batch.num_rows
    lines = list(range(first_row, first_row + n))
    present = set(batch.schema.names)
    missing = [c for c in table.column_names if c not in present]
    if missing:
        rows = batch.to_pylist()
        return RawChunk(table.name, source), [
            dead_letter(table.name, source, ln, json.dumps(r, default=str),
                        f"file lacks declared column(s) {missing}") for ln, r in zip(lines, rows)]
    cols = {c: batch.column(c).to_pylist() for c in table.column_names}
    for c in cols.values():  # a Parquet NaN is a missing value (as pandas writes one)
        c[:] = [None if isinstance(v, float) and math.isnan(v) else v for v in c]
    raw = [json.dumps(r, default=str) for r in batch.select(table.column_names).to_pylist()]
    return RawChunk(table.name, source, lines=lines, raw=raw, values=cols), []


def _quick(kind: str):
    """The common case of a value of type `kind`, typed without values' full checks:
    returns the typed value, or None to take values.CONVERTERS (which names problems)."""
    if kind == "int64":
        def quick(v):
            if type(v) is str and v.isdigit() and v.isascii() and len(v) < 19:
                return int(v)  # plain digits, fewer than int64's 19: always in range
            if type(v) is int and values.INT64_MIN <= v <= values.INT64_MAX:
                return v
            return None
    elif kind == "float64":
        def quick(v):
            if type(v) is float and math.isfinite(v):
                return v
            if type(v) is str and values.is_plain_decimal(v):
                x = float(v)
                return x if math.isfinite(x) else None
            return None
    else:
        def quick(v):
            return v if type(v) is str else None
    return quick


def _typed_column(col, raw: list, nulls: set, problems: list[list[str]]) -> pa.Array:
    """One column's raw values typed exactly (values.CONVERTERS); each value that cannot
    be, or breaks the column's bounds or `required`, adds a problem to its row."""
    convert, quick = values.CONVERTERS[col.type], _quick(col.type)
    lo, hi = col.min, col.max
    out: list = [None] * len(raw)
    for i, v in enumerate(raw):
        if v is None or (type(v) is str and v in nulls):
            if col.required:
                problems[i].append(f"{col.name}: missing required value")
            continue
        x = quick(v)
        if x is None:
            try:
                x = convert(v)
            except values.ValueProblem as e:
                problems[i].append(f"{col.name}: {e}")
                continue
        if lo is not None and x < lo:
            problems[i].append(f"{col.name}: {values.show(v)} below minimum {lo}")
        elif hi is not None and x > hi:
            problems[i].append(f"{col.name}: {values.show(v)} above maximum {hi}")
        else:
            out[i] = x
    return pa.array(out, ARROW_TYPES[col.type])


def validate_chunk(table: TableSpec, chunk: RawChunk) -> tuple[pa.RecordBatch, list[dict]]:
    """Types every column of the chunk; rows breaking the schema become dead letters.

    Returns the valid rows as a RecordBatch (declared columns + _source, _line) and one
    dead letter per invalid row naming every problem found in it.
    """
    n = len(chunk)
    problems: list[list[str]] = [[] for _ in range(n)]
    arrays = {col.name: _typed_column(col, chunk.values[col.name],
                                      set(table.null_values(col.name)), problems)
              for col in table.columns}
    bad_rows = np.array([bool(p) for p in problems], dtype=bool) if n else np.zeros(0, bool)
    dead = [dead_letter(table.name, chunk.source, chunk.lines[i], chunk.raw[i], "; ".join(problems[i]))
            for i in np.flatnonzero(bad_rows)]
    arrays[SOURCE_COL] = pa.array([chunk.source] * n, pa.string())
    arrays[LINE_COL] = pa.array(np.asarray(chunk.lines, dtype=np.int64))
    batch = pa.RecordBatch.from_pydict(arrays)
    if bad_rows.any():
        batch = batch.filter(pa.array(~bad_rows))
    return batch, dead


def typed_schema(table: TableSpec) -> pa.Schema:
    fields = [pa.field(c.name, ARROW_TYPES[c.type]) for c in table.columns]
    return pa.schema(fields + [pa.field(SOURCE_COL, pa.string()), pa.field(LINE_COL, pa.int64())])


def _fast_path_declines(header: list[str], table: TableSpec, records: CsvChunk) -> bool:
    """Cheap whole-chunk checks for what Arrow would read differently from the exact
    path: a missing column, a NUL byte, a record past the csv module's field size limit
    (blank lines show as a short row count: Arrow skips them)."""
    return (any(c not in header for c in table.column_names) or b"\x00" in records.joined()
            or max(map(len, records.raw)) > csv.field_size_limit())


def _fast_number(a: pa.Array, kind: str, n: int) -> pa.Array | None:
    """A string column as int64 (plain integers only, cast exactly: never through
    float64) or finite float64; None for anything else (the exact path names it)."""
    import pyarrow.compute as pc

    if kind == "int64" and pc.all(pc.match_substring_regex(a, r"^-?[0-9]+$")).as_py() is False:
        return None  # e.g. "3.0", "+5", "0x10" (Arrow reads hexadecimal): the exact path
    try:
        num = pc.cast(a, pa.int64() if kind == "int64" else pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. past int64
        return None
    if kind == "float64" and num.null_count < n and not pc.all(pc.is_finite(num)).as_py():
        return None
    return num


def fast_csv_chunk(table: TableSpec, source: str, header: list[str],
                   records: CsvChunk) -> pa.RecordBatch | None:
    """Arrow's CSV reader and compute kernels for a chunk with nothing wrong in it.

    Returns the typed batch (as validate_chunk would), or None as soon as anything in
    the chunk needs a closer look (a malformed record, a blank line, a bad number, a
    value out of range, invalid UTF-8, a NUL byte): the caller then takes the exact
    per-record path, which names every problem. Clean chunks, the common case, skip
    Python per-value work. Records are whole (csvsplit), so quoted line breaks are
    values and each row keeps its record's first line number.
    """
    import io

    import pyarrow.csv as pacsv

    if not len(records) or _fast_path_declines(header, table, records) \
            or table.per_column_nulls:  # Arrow's null_values are one set per read
        return None
    try:
        t = pacsv.read_csv(
            io.BytesIO(records.joined()),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=True,
                                             newlines_in_values=records.multiline),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                null_values=list(table.null_tokens), strings_can_be_null=True,
                include_columns=table.column_names))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    n = len(records)
    if t.num_rows != n:
        return None
    arrays = {}
    import pyarrow.compute as pc

    for col in table.columns:
        a = t.column(col.name).combine_chunks()
        if col.required and a.null_count:
            return None
        if col.type == "string":
            arrays[col.name] = a
            continue
        num = _fast_number(a, col.type, n)
        if num is None:
            return None
        if num.null_count < n:
            mm = pc.min_max(num).as_py()
            if (col.min is not None and mm["min"] < col.min) or (
                    col.max is not None and mm["max"] > col.max):
                return None
        arrays[col.name] = num
    arrays[SOURCE_COL] = pa.array([source] * n, pa.string())
    lines = records.lines
    arrays[LINE_COL] = pa.array(np.arange(lines.start, lines.stop, dtype=np.int64)
                                if isinstance(lines, range) else np.asarray(lines, np.int64))
    return pa.RecordBatch.from_pydict(arrays)
