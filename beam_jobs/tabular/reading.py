"""Reading raw tables, shared by every Beam job that reads them (features, score, monitor):
driver-side input checks, then files -> chunks of records -> validated Arrow batches.

All file access goes through Beam's FileSystems, so local paths and gs:// work alike.
Parse and validation failures leave as dead letters (beam_jobs.common.deadletter) on the
DEAD output; nothing is dropped silently.
"""
from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_jobs.common import inputs
from beam_jobs.tabular import csvsplit, prepare, records
from beam_jobs.common.inputs import InputError
from mlbatch import periods as mlbatch_periods
from mlbatch import storage
from mlbatch.schema import TableSpec

LOGGER = logging.getLogger(__name__)
DEAD = "dead"
FILES = "files"


def table_pattern(input_root: str, table: TableSpec, named: bool = False) -> str:
    """The file pattern of a table: its schema path under --input, or --input itself
    when it names the files (`named`, see names_files)."""
    return input_root if named else FileSystems.join(input_root.rstrip("/"), table.path)


def _names_table(path: str, table: TableSpec, only: bool) -> bool:
    """Whether a file of a glob/file --input belongs to the table: by its schema path
    (e.g. `weather*.csv`), or always when the schema has just one table."""
    depth = table.path.strip("/").count("/") + 1  # compare as many trailing parts
    tail = "/".join(path.replace("\\", "/").split("/")[-depth:])
    return only or fnmatch.fnmatchcase(tail, table.path.strip("/"))


def check_inputs(input_root: str, tables: list[TableSpec],
                 needed: dict[str, list[str]] | None = None,
                 periods: mlbatch_periods.Selection | None = None) -> dict[str, list[str]]:
    """Driver-side check of the inputs before anything runs: every table has at least
    one file, and every CSV header / Parquet schema holds the table's declared columns
    (with ``needed``, only the columns it names per table: serving reads no label and no
    column that no feature reads, beam_jobs.tabular.serving.needed_columns).

    --input is a directory (or gs:// prefix) holding each table's `path` pattern, or a
    glob or single file; then each file goes to the table whose `path` its name matches
    (every file to the one table of a single-table schema). With ``periods``, a table's
    files are its `path` under each period's Hive folder (``period=2013-10/``) and under
    --input itself (a table not split by period, e.g. a dimension table); files of other
    periods are not read (beam_jobs.tabular.periods counts them).

    Raises:
      FileNotFoundError: naming each table without files and the pattern tried.
      InputError: naming each file whose header lacks declared columns or names one
        twice, each Parquet column stored as another type than declared, and each
        table without a data row in any of its files (unless it sets allow_empty).
      mlbatch.storage.StorageError: a remote check got no answer in time, naming the URI.

    Local paths are made absolute first: a row's example_id names the file it came from,
    so the same file read as ``data/x.csv`` by one job and by its recorded absolute URI by
    another (the monitor reading the training files) gives the same ids.
    """
    given = input_root
    if not storage.is_remote(input_root):
        input_root = storage.locate(input_root).uri
    found, missing = {}, []
    named = inputs.names_files(input_root)
    for t in tables:
        pattern = table_pattern(input_root, t, named)
        matched = (period_files(input_root, t, periods) if periods and not named
                   else [path for path, _ in inputs.match_files(pattern)])
        if periods and named:
            matched = [p for p in matched if periods.of_path(p) in (None, *periods.periods)]
        paths = matched
        if named:  # the files of a glob or the file: those named for this table
            paths = [p for p in matched if _names_table(p, t, len(tables) == 1)]
        if not paths:
            where = (f"no file of --input {given} is named like {t.path}"
                     if matched else f"no file matches {pattern}")
            missing.append(f"table {t.name!r}: {where}")
        found[t.name] = paths
    if missing:
        raise FileNotFoundError("input files not found:\n  " + "\n  ".join(missing))
    facts = {(t.name, path): _facts(t, path) for t in tables for path in found[t.name]}
    needed = needed or {}
    problems = [p for t in tables for path in found[t.name]
                if (p := header_problem(t, path, facts[t.name, path], needed.get(t.name)))]
    if problems:
        raise InputError("input files do not match the schema:\n  " + "\n  ".join(problems))
    empty = [empty_problem(t, found[t.name]) for t in tables
             if not t.allow_empty and not any(facts[t.name, p].has_data for p in found[t.name])]
    if empty:
        raise InputError("input tables without data:\n  " + "\n  ".join(empty))
    return found


def period_files(input_root: str, table: TableSpec,
                 periods: mlbatch_periods.Selection) -> list[str]:
    """A table's files under each period's Hive folder and under ``input_root`` itself."""
    roots = [FileSystems.join(input_root.rstrip("/"), periods.folder(p))
             for p in periods.periods] + [input_root]
    return sorted({path for root in roots
                   for path, _ in inputs.match_files(table_pattern(root, table))})


def present_columns(table: TableSpec, paths: list[str]) -> list[str]:
    """The table's declared columns that every one of its files holds (all of them for
    JSON lines, whose records name their own fields)."""
    names = [_facts(table, p).names for p in paths]
    return [c for c in table.column_names if all(n is None or c in n for n in names)]


@dataclass
class FileFacts:
    """What a file declares, read on the driver: its column names (CSV header, Parquet
    schema; None for JSON lines or an empty CSV file), its Parquet schema, and whether
    it holds any data record (a non-blank line after the header, a Parquet row)."""
    names: list[str] | None = None
    arrow: pa.Schema | None = None
    has_data: bool = True
    problem: str | None = None


SCAN_LINES = 1000  # lines read on the driver looking for a first data record


def _has_data_line(f, lines: int = SCAN_LINES) -> bool:
    """Whether a non-blank line follows (past `lines` blank ones: assumed so, the
    pipeline then dead-letters the blank ones and the job still finds no rows)."""
    for _ in range(lines):
        line = f.readline()
        if not line:
            return False
        if line.strip():
            return True
    return True


def _read_facts(table: TableSpec, path: str) -> FileFacts:
    with FileSystems.open(path) as f:
        if table.format == "parquet":
            meta = pq.ParquetFile(f).metadata
            arrow = meta.schema.to_arrow_schema()
            return FileFacts(arrow.names, arrow, meta.num_rows > 0)
        if table.format != "csv":
            return FileFacts(None, None, _has_data_line(f))
        first = f.readline()
        if not first:
            return FileFacts(None, None, False)
        return FileFacts(records.parse_csv_header(first), None, _has_data_line(f))


def _facts(table: TableSpec, path: str) -> FileFacts:
    try:
        return inputs.bounded("reading the header", path, lambda: _read_facts(table, path))
    except UnicodeDecodeError:
        return FileFacts(problem=f"{path}: the header line is not valid UTF-8")
    except storage.StorageError:
        raise
    except (OSError, pa.ArrowInvalid) as e:
        return FileFacts(problem=f"{path}: cannot read its header ({e})")


def empty_problem(table: TableSpec, paths: list[str]) -> str:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return (f"table {table.name!r}: no data rows in its file(s) {shown} (empty or only a "
            f"header; set allow_empty: true on the table if that is expected)")


def _duplicates(names: list[str], table: TableSpec) -> dict[str, list[int]]:
    """Declared columns the header names more than once -> their 1-based positions."""
    return {c: [i + 1 for i, n in enumerate(names) if n == c]
            for c in table.column_names if names.count(c) > 1}


def header_problem(table: TableSpec, path: str, facts: FileFacts | None = None,
                   needed: list[str] | None = None) -> str | None:
    """What is wrong with a file's header for its table (None: nothing): a declared
    column absent (only those in ``needed`` when given) or named twice, or (Parquet)
    stored as another type."""
    facts = facts or _facts(table, path)
    if facts.problem or facts.names is None:
        return facts.problem
    names = facts.names
    absent = [c for c in (table.column_names if needed is None else needed) if c not in names]
    if absent:
        what = "declares" if needed is None else "needs"
        return (f"{path}: table {table.name!r} {what} column(s) {absent} that its header "
                f"lacks (header: {names[:30]})")
    twice = _duplicates(names, table)
    if twice:
        return f"{path}: duplicate column name(s) in the header: " + ", ".join(
            f"{c!r} (columns {', '.join(map(str, at))})" for c, at in twice.items())
    return parquet_type_problem(table, path, facts.arrow) if facts.arrow is not None else None


check_header = header_problem  # the name the feature job's io re-exports


def _type_fits(declared: str, actual: pa.DataType) -> bool:
    """Whether Parquet values of `actual` type read exactly as the declared type (a
    column of nulls only fits any)."""
    if pa.types.is_null(actual):
        return True
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if declared == "int64":
        return pa.types.is_integer(actual)  # uint64 past int64: a dead letter per value
    if declared == "float64":
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    return pa.types.is_string(actual) or pa.types.is_large_string(actual)


def parquet_type_problem(table: TableSpec, path: str, arrow: pa.Schema) -> str | None:
    """Declared columns whose Parquet type does not read as the declared type (a
    boolean as int64 would become 0/1, a timestamp as string its text)."""
    wrong = [f"{c.name!r} declared {c.type}, stored as {arrow.field(c.name).type}"
             for c in table.columns
             if c.name in arrow.names and not _type_fits(c.type, arrow.field(c.name).type)]
    if not wrong:
        return None
    return f"{path}: table {table.name!r}: column type(s) differ from the schema: " + \
        "; ".join(wrong)


class ReadChunksFn(beam.DoFn):
    """A file path -> chunks of up to chunk_rows records; parse failures go to DEAD.

    CSV files are cut into whole records first (csvsplit: a quoted field may span
    lines), so every record keeps the number of the physical line it starts on and
    chunks end between records. A CSV chunk with nothing wrong in it comes out already
    typed (a RecordBatch, from Arrow's CSV reader); any other chunk as a RawChunk for
    the exact per-record checks.

    Also emits one FILES record per file for the summary: ``records`` (CSV and JSON-lines
    records, Parquet rows; each ends up valid or dead-lettered, so the table's counts
    reconcile in records) and ``lines`` (physical data lines, header excluded; more than
    records where quoted fields hold line breaks).
    """

    def __init__(self, table: TableSpec, chunk_rows: int, job: str = "features"):
        self._table = table
        self._chunk_rows = chunk_rows
        self._job = job
        self._records = Metrics.counter(job, f"{table.name}_records_read")
        self._dead = Metrics.counter(job, f"{table.name}_parse_errors")

    def process(self, path: str):
        t = self._table
        with FileSystems.open(path) as f:
            if t.format == "parquet":
                counts = yield from self._read_parquet(f, path)
            elif t.format == "csv":
                counts = yield from self._read_csv(f, path)
            else:
                counts = yield from self._read_jsonl(f, path)
        self._records.inc(counts[0])
        yield beam.pvalue.TaggedOutput(FILES, {"table": t.name, "path": path,
                                               "records": counts[0], "lines": counts[1]})

    def _blocks(self, f):
        block: list[bytes] = []
        for line in iter(f.readline, b""):
            block.append(line)
            if len(block) >= self._chunk_rows:
                yield block
                block = []
        if block:
            yield block

    def _read_parquet(self, f, path):
        first = 1
        for batch in pq.ParquetFile(f).iter_batches(batch_size=self._chunk_rows):
            chunk, dead = records.chunk_from_arrow(self._table, path, batch, first)
            first += batch.num_rows
            yield from self._emit(chunk, dead)
        return first - 1, first - 1

    def _read_jsonl(self, f, path):
        lineno = 1
        for block in self._blocks(f):
            yield from self._emit(*records.parse_jsonl_chunk(self._table, path, block, lineno))
            lineno += len(block)
        return lineno - 1, lineno - 1

    def _read_csv(self, f, path):
        splitter = csvsplit.CsvSplitter()
        header, header_lines, seen = None, 0, 0
        for block in self._blocks(f):
            chunk = splitter.feed(block)
            if header is None and len(chunk):
                header = self._header(chunk.raw[0])
                header_lines, chunk = csvsplit.count_lines(chunk.raw[0]), chunk.part(1)
            for start in range(0, len(chunk), self._chunk_rows):
                part = chunk if len(chunk) <= self._chunk_rows else \
                    chunk.part(start, start + self._chunk_rows)
                seen += len(part)
                yield from self._parse_csv(path, header, part)
        open_record = splitter.finish()
        if open_record is not None:
            where = "header" if header is None else "record"  # None: the header never closed
            dead = records.dead_letter(
                self._table.name, path, open_record.line,
                open_record.raw.decode("utf-8", "backslashreplace"),
                open_record.reason.replace("record", where, 1))
            seen += 1
            yield from self._emit(records.RawChunk(self._table.name, path), [dead])
        return seen, splitter.lines_read - header_lines

    @staticmethod
    def _header(raw: bytes) -> list[str]:
        try:
            return records.parse_csv_header(raw)
        except UnicodeDecodeError:
            return []  # every data record is then rejected naming the header

    def _parse_csv(self, path, header, chunk):
        batch = records.fast_csv_chunk(self._table, path, header, chunk)
        if batch is not None:  # clean chunk: already typed and validated
            yield batch
            return
        yield from self._emit(*records.parse_csv_chunk(self._table, path, header, chunk))

    def _emit(self, chunk, dead):
        self._dead.inc(len(dead))
        for d in dead:
            yield beam.pvalue.TaggedOutput(DEAD, relabel(d, self._job))
        if len(chunk):
            yield chunk


class ReadTable(beam.PTransform):
    """A table's files (matched on the driver by check_inputs) -> chunks (+ DEAD and
    FILES outputs). beam.Create spreads several files over workers (it reshuffles when
    given more than one), so each file is read where it lands."""

    def __init__(self, paths: list[str], table: TableSpec, chunk_rows: int,
                 job: str = "features"):
        super().__init__()
        self._paths = list(paths)
        self._table = table
        self._chunk_rows = chunk_rows
        self._job = job

    def expand(self, pbegin):
        return (pbegin
                | "Files" >> beam.Create(self._paths)
                | "ReadChunks" >> beam.ParDo(
                    ReadChunksFn(self._table, self._chunk_rows, self._job))
                .with_outputs(DEAD, FILES, main="chunks"))


def relabel(dead: dict, job: str) -> dict:
    """A dead letter as produced by ``job`` (records.py's builders name "features")."""
    return dead if dead["job"] == job else {**dead, "job": job}


class ValidateChunkFn(beam.DoFn):
    """RawChunk -> typed RecordBatch of valid rows; invalid rows to DEAD with reasons."""

    def __init__(self, table: TableSpec, job: str = "features"):
        self._table = table
        self._job = job
        self._valid = Metrics.counter(job, f"{table.name}_valid")
        self._invalid = Metrics.counter(job, f"{table.name}_invalid")

    def process(self, chunk: records.RawChunk | pa.RecordBatch):
        if isinstance(chunk, pa.RecordBatch):  # validated on the fast path while read
            self._valid.inc(chunk.num_rows)
            yield chunk
            return
        batch, dead = records.validate_chunk(self._table, chunk)
        self._valid.inc(batch.num_rows)
        self._invalid.inc(len(dead))
        for d in dead:
            yield beam.pvalue.TaggedOutput(DEAD, relabel(d, self._job))
        if batch.num_rows:
            yield batch


class BuildLookup(beam.PTransform):
    """Valid batches of a lookup table -> one deduplicated Arrow table (a singleton) and
    the number of duplicate-key rows dropped."""

    def __init__(self, table: TableSpec, many_to_one: bool = False):
        super().__init__()
        self._table, self._many_to_one = table, many_to_one

    def expand(self, batches):
        table, strict = self._table, self._many_to_one
        deduped = (batches
                   | "Collect" >> beam.combiners.ToList()
                   | "Dedupe" >> beam.Map(lambda bs: prepare.dedupe_lookup(table, bs, strict)))
        return (deduped | "Table" >> beam.Map(lambda td: td[0]),
                deduped | "Duplicates" >> beam.Map(
                    lambda td: (f"{table.name}_duplicate_keys_dropped", td[1])))


def camel(name: str) -> str:
    """A table name as a step label's noun: ``plane_models`` -> ``PlaneModels``."""
    return "".join(part.capitalize() for part in name.split("_"))


def build_lookups(valid: dict, schema) -> tuple[dict, list]:
    """Per join, the lookup table's valid rows as one side input (``BuildLookup``; an
    as-of join's sorted by key and time, ``prepare.sort_lookup_for_asof``), and
    the PCollections of its duplicate-key counts; the feature job and serving both."""
    lookups, dupes = {}, []
    for join in schema.joins:
        table, counted = valid[join.table] | f"Build{camel(join.table)}Lookup" >> \
            BuildLookup(schema.tables[join.table], join.many_to_one)
        if join.as_of:  # sorted once here; each batch only binary-searches it
            table = table | f"Sort{camel(join.table)}Lookup" >> beam.Map(
                prepare.sort_lookup_for_asof, join)
        lookups[join.table] = beam.pvalue.AsSingleton(table)
        dupes.append(counted)
    return lookups, dupes


def fill_absent(batch: pa.RecordBatch, table: TableSpec) -> pa.RecordBatch:
    """A batch read with some declared columns absent -> all of them, in the declared
    order (records.typed_schema): an absent column is all null."""
    full = records.typed_schema(table)
    arrays = [batch.column(f.name) if f.name in batch.schema.names
              else pa.nulls(batch.num_rows, f.type) for f in full]
    return pa.RecordBatch.from_arrays(arrays, schema=full)
