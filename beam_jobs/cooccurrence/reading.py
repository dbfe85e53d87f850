"""Corpus reading for the co-occurrence job (any Beam file system).

``PlanReads`` matches the input glob, skips (and reports) empty, binary and unreadable
files, and cuts every uncompressed file into byte ranges of ``split_bytes`` (compressed
files are one range); ``ReadTextBatchesFn`` reads a range (``lines.RangeReader``) as
``TextBatch``es of whole lines, about ``batch_bytes`` each, so the counting DoFns see
thousands of lines per call instead of one element per line. Lines that are not UTF-8 or
longer than ``max_line_bytes`` are skipped, counted and sent to the dead-letter output
(``beam_jobs.common.deadletter`` records naming the file and byte offset); they still
separate their neighbours (a skipped line is a context boundary too).
"""
from __future__ import annotations

import typing
import zlib
from collections import Counter
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_jobs.common import deadletter, inputs
from beam_jobs.common.deadletter import DEAD_LETTER
from beam_jobs.cooccurrence.config import JOB
from beam_jobs.cooccurrence.lines import ByteRange, RangeReader

STATS = "stats"
BINARY_SNIFF_BYTES = 8192
RAW_FILE_BYTES = 64  # first bytes of a skipped file quoted in its dead-letter record


class TextBatch(typing.NamedTuple):
    """Whole lines of one file: ``text`` holds them separated by ``\\n``."""
    path: str
    offset: int  # byte offset of the first line in the file
    text: str
    lines: int


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def match_corpus(pattern: str) -> list[tuple[str, int]]:
    """(path, size) of every file the --input glob matches, sorted; on the driver, before
    anything runs (local or remote: ``beam_jobs.common.inputs``, bounded in time)."""
    return inputs.require_files(pattern)


class PlanRangesFn(beam.DoFn):
    """FileMetadata -> ByteRanges; empty, binary and unreadable files go to dead letters."""

    def __init__(self, split_bytes: int) -> None:
        self._split_bytes = split_bytes
        self._skipped = {kind: Metrics.counter("cooccurrence", f"{kind}_files")
                         for kind in ("empty", "binary", "unreadable")}

    def process(self, metadata: fileio.FileMetadata):
        path, size = metadata.path, metadata.size_in_bytes
        compressed = CompressionTypes.detect_compression_type(path) != \
            CompressionTypes.UNCOMPRESSED
        skip = self._skip_reason(path, size, compressed)
        yield beam.pvalue.TaggedOutput(STATS, Counter(files=1, bytes=size, **(
            {f"{skip[0]}_files": 1} if skip else {"files_read": 1})))
        if skip:
            kind, reason, head = skip
            self._skipped[kind].inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, deadletter.record(
                JOB, path, reason, _text(head), offset=0))
            return
        if compressed:
            yield ByteRange(path, 0, None, True)
            return
        for start in range(0, size, self._split_bytes):
            yield ByteRange(path, start, min(start + self._split_bytes, size), False)

    @staticmethod
    def _skip_reason(path: str, size: int, compressed: bool
                     ) -> tuple[str, str, bytes] | None:
        """(kind, reason, first bytes) of a file that is not read, else None."""
        if size == 0:
            return "empty", "empty file", b""
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.AUTO
                                  if compressed else CompressionTypes.UNCOMPRESSED) as f:
                head = f.read(BINARY_SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as err:
            return "unreadable", f"unreadable file: {type(err).__name__}: {err}", b""
        if not head:
            return "empty", "empty file (after decompression)", b""
        if b"\x00" in head:
            return ("binary", f"binary file: NUL byte in the first {BINARY_SNIFF_BYTES} bytes",
                    head[:RAW_FILE_BYTES])
        return None


class PlanReads(beam.PTransform):
    """Input glob -> shuffled ByteRanges, plus per-file stats and dead letters."""

    def __init__(self, pattern: str, split_bytes: int) -> None:
        super().__init__()
        self._pattern, self._split_bytes = pattern, split_bytes

    def expand(self, pbegin):
        planned = (pbegin
                   | "CreatePattern" >> beam.Create([self._pattern])
                   | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
                   | "PlanRanges" >> beam.ParDo(PlanRangesFn(self._split_bytes))
                   .with_outputs(STATS, DEAD_LETTER, main="ranges"))
        ranges = planned.ranges | "ShuffleRanges" >> beam.Reshuffle()
        return ranges, planned[STATS], planned[DEAD_LETTER]


class ReadTextBatchesFn(beam.DoFn):
    """ByteRange -> TextBatch (main), skipped lines (dead letter), per-range stats."""

    def __init__(self, batch_bytes: int, max_line_bytes: int) -> None:
        self._batch_bytes, self._max_line_bytes = batch_bytes, max_line_bytes
        self._non_utf8 = Metrics.counter("cooccurrence", "lines_skipped_non_utf8")
        self._too_long = Metrics.counter("cooccurrence", "lines_skipped_too_long")
        self._lines = Metrics.counter("cooccurrence", "lines_read")

    def process(self, byte_range: ByteRange):
        stats = Counter()
        reader = RangeReader(byte_range, self._batch_bytes, self._max_line_bytes)
        for block in reader.blocks():
            for long_line in block.skipped:
                stats["lines_skipped_too_long"] += 1
                stats["lines"] += 1
                self._too_long.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, deadletter.record(
                    JOB, byte_range.path, f"line longer than --max-line-bytes "
                    f"{self._max_line_bytes} (first {len(long_line.head)} bytes kept)",
                    _text(long_line.head), offset=long_line.offset))
            if block.data:
                yield from self._decode(byte_range.path, block.offset, block.data, stats)
        self._lines.inc(stats["lines"])
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def _decode(self, path: str, offset: int, block: bytes, stats: Counter) -> Iterator:
        lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        stats["lines"] += lines
        try:
            yield TextBatch(path, offset, block.decode("utf-8"), lines)
            return
        except UnicodeDecodeError:
            pass
        good, line_offset = [], offset
        for raw in block.split(b"\n")[:lines]:
            try:
                good.append(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                stats["lines_skipped_non_utf8"] += 1
                self._non_utf8.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, deadletter.record(
                    JOB, path, f"not valid UTF-8: {err.reason} at byte {err.start} of the line",
                    _text(raw), offset=line_offset))
            line_offset += len(raw) + 1
        if good:
            yield TextBatch(path, offset, "\n".join(good), len(good))
