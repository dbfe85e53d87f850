"""The one dead-letter record of every Beam job, and its one sink.

Every record a job cannot use leaves the pipeline as one dict of this shape, on the
tagged output named ``DEAD_LETTER``, and is written by ``WriteDeadLetters`` to
``<output>/dead_letter/part-*.parquet`` (many producers, one sink: Beam's
``ErrorHandler`` pattern). ``line`` is the 1-based physical line a record starts on
(row number for Parquet input), ``offset`` its byte offset where the job reads bytes;
either may be null. ``raw`` holds the record's text (abbreviated past ``MAX_RAW_CHARS``).
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from beam_jobs.common.sinks import WriteRecords

DEAD_LETTER = "dead_letter"
SCHEMA = pa.schema([
    ("job", pa.string()), ("table", pa.string()), ("source", pa.string()),
    ("line", pa.int64()), ("offset", pa.int64()), ("reason", pa.string()), ("raw", pa.string())])
MAX_RAW_CHARS = 65_536


def record(job: str, source: str, reason: str, raw: str = "", *, table: str | None = None,
           line: int | None = None, offset: int | None = None) -> dict:
    if len(raw) > MAX_RAW_CHARS:
        raw = f"{raw[:MAX_RAW_CHARS]}... [{len(raw)} characters in all]"
    return {"job": job, "table": table, "source": source,
            "line": None if line is None else int(line),
            "offset": None if offset is None else int(offset), "reason": reason, "raw": raw}


class WriteDeadLetters(beam.PTransform):
    """Dead-letter dicts -> ``<prefix>-00000-of-00001.parquet`` (a valid empty file when
    there are none, so readers always find it)."""

    def __init__(self, prefix: str, codec: str = "snappy"):
        super().__init__()
        self._prefix, self._codec = prefix, codec

    def expand(self, records):
        return records | "WriteRecords" >> WriteRecords(self._prefix, SCHEMA, codec=self._codec)
