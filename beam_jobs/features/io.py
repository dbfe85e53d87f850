"""Read*/Write* composites of the feature job: raw files in, Parquet and JSON out.

All file access goes through Beam's FileSystems, so local paths and gs:// work alike.
"""
from __future__ import annotations

import json
import logging

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_jobs.common import records
from mlbatch.schema import TableSpec

LOGGER = logging.getLogger(__name__)
DEAD = "dead"
FILES = "files"


def table_pattern(input_root: str, table: TableSpec) -> str:
    """The file pattern of a table: its schema path under --input (or --input itself
    if that is already a pattern naming the table's files)."""
    return FileSystems.join(input_root.rstrip("/"), table.path)


def check_inputs(input_root: str, tables: list[TableSpec]) -> dict[str, list[str]]:
    """Driver-side check that every table has at least one file; names what is missing."""
    found, missing = {}, []
    for t in tables:
        pattern = table_pattern(input_root, t)
        try:
            result = FileSystems.match([pattern])[0]
            paths = sorted(m.path for m in result.metadata_list)
        except (OSError, ValueError) as e:  # BeamIOError is an OSError
            LOGGER.debug("match failed for %s: %s", pattern, e)
            paths = []
        if not paths:
            missing.append(f"table {t.name!r}: no file matches {pattern}")
        found[t.name] = paths
    if missing:
        raise FileNotFoundError("input files not found:\n  " + "\n  ".join(missing))
    return found


class ReadChunksFn(beam.DoFn):
    """A file path -> chunks of up to chunk_rows records; parse failures go to DEAD.

    A CSV chunk with nothing wrong in it comes out already typed (a RecordBatch, from
    Arrow's CSV reader); any other chunk as a RawChunk for the exact per-line checks.

    Also emits one FILES record per file (records seen, empty or not) for the summary.
    """

    def __init__(self, table: TableSpec, chunk_rows: int):
        self._table = table
        self._chunk_rows = chunk_rows
        self._records = Metrics.counter("features", f"{table.name}_records_read")
        self._dead = Metrics.counter("features", f"{table.name}_parse_errors")

    def process(self, path: str):
        t = self._table
        seen = 0
        with FileSystems.open(path) as f:
            if t.format == "parquet":
                pf = pq.ParquetFile(f)
                first = 1
                for batch in pf.iter_batches(batch_size=self._chunk_rows):
                    chunk, dead = records.chunk_from_arrow(t, path, batch, first)
                    first += batch.num_rows
                    seen += batch.num_rows
                    yield from self._emit(chunk, dead)
            else:
                readline = iter(f.readline, b"")
                lineno = 1
                header = None
                if t.format == "csv":
                    first_line = next(readline, None)
                    if first_line is not None:
                        try:
                            header = records.parse_csv_header(first_line)
                        except UnicodeDecodeError:
                            header = []  # every data line is then rejected naming the header
                        lineno = 2
                buf: list[bytes] = []
                for line in readline:
                    buf.append(line)
                    if len(buf) >= self._chunk_rows:
                        yield from self._parse(path, header, buf, lineno)
                        lineno += len(buf)
                        seen += len(buf)
                        buf = []
                if buf:
                    yield from self._parse(path, header, buf, lineno)
                    seen += len(buf)
        self._records.inc(seen)
        yield beam.pvalue.TaggedOutput(FILES, {"table": t.name, "path": path, "records": seen})

    def _parse(self, path, header, lines, first):
        if self._table.format == "csv":
            batch = records.fast_csv_chunk(self._table, path, header, lines, first)
            if batch is not None:  # clean chunk: already typed and validated
                yield batch
                return
            chunk, dead = records.parse_csv_chunk(self._table, path, header, lines, first)
        else:
            chunk, dead = records.parse_jsonl_chunk(self._table, path, lines, first)
        yield from self._emit(chunk, dead)

    def _emit(self, chunk, dead):
        self._dead.inc(len(dead))
        for d in dead:
            yield beam.pvalue.TaggedOutput(DEAD, d)
        if len(chunk):
            yield chunk


class ReadTable(beam.PTransform):
    """A table's files (matched on the driver by check_inputs) -> chunks (+ DEAD and
    FILES outputs). beam.Create spreads several files over workers (it reshuffles when
    given more than one), so each file is read where it lands."""

    def __init__(self, paths: list[str], table: TableSpec, chunk_rows: int):
        super().__init__()
        self._paths = list(paths)
        self._table = table
        self._chunk_rows = chunk_rows

    def expand(self, pbegin):
        return (pbegin
                | "Files" >> beam.Create(self._paths)
                | "ReadChunks" >> beam.ParDo(ReadChunksFn(self._table, self._chunk_rows))
                .with_outputs(DEAD, FILES, main="chunks"))


def write_json(path: str, doc: dict) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8"))


def read_json(path: str) -> dict:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))
