"""Corpus reading and output writing for the co-occurrence job (any Beam filesystem).

Reading: ``PlanReads`` matches the input glob, skips (and reports) empty, binary and
unreadable files, and cuts every uncompressed file into byte ranges of ``split_bytes``
(compressed files are one range); ``ReadTextBatchesFn`` reads a range as ``TextBatch``es of
whole lines, about ``batch_bytes`` each, so the counting DoFns see thousands of lines per
call instead of one element per line. A line belongs to the range its first byte is in,
as in Beam's own text source. Lines that are not UTF-8 or longer than ``max_line_bytes``
are skipped, counted and sent to the dead-letter output with their file and byte offset;
they still separate their neighbours (a skipped line is a context boundary too).

Writing: one Parquet file per row shard (``part-SSSSS-of-NNNNN.parquet``), written to a
temporary name and renamed, so a retried bundle never leaves a half-written shard.
"""
from __future__ import annotations

import json
import logging
import typing
import zlib
from collections import Counter

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

LOGGER = logging.getLogger(__name__)

DEAD_LETTER = "dead_letter"
STATS = "stats"
BINARY_SNIFF_BYTES = 8192
TRIPLET_SCHEMA = pa.schema([("row", pa.int32()), ("col", pa.int32()), ("value", pa.float64())])
VOCAB_SCHEMA = pa.schema([("id", pa.int32()), ("token", pa.string()), ("count", pa.int64())])


class TextBatch(typing.NamedTuple):
    """Whole lines of one file: ``text`` holds them separated by ``\\n``."""
    path: str
    offset: int  # byte offset of the first line in the file
    text: str
    lines: int


class ByteRange(typing.NamedTuple):
    path: str
    start: int
    end: int | None  # None: to the end of the file (compressed files)
    compressed: bool


class OutputLayout(typing.NamedTuple):
    """Where each output of the job lives under ``--output``."""
    root: str

    def join(self, *parts: str) -> str:
        return FileSystems.join(self.root, *parts)

    @property
    def vocab(self) -> str:
        return self.join("vocab")

    @property
    def cooccurrence(self) -> str:
        return self.join("cooccurrence")

    @property
    def ppmi(self) -> str:
        return self.join("ppmi")

    @property
    def vectors(self) -> str:
        return self.join("vectors")

    @property
    def word2vec(self) -> str:
        return self.join("vectors.txt")

    @property
    def summary(self) -> str:
        return self.join("summary.json")

    @property
    def dead_letter(self) -> str:
        return self.join(DEAD_LETTER)


def dead_letter_record(path: str, offset: int | None, reason: str, sample: bytes = b""
                       ) -> str:
    return json.dumps({"path": path, "offset": offset, "reason": reason,
                       "sample": sample[:80].decode("utf-8", "backslashreplace")})


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
            self._skipped[skip[0]].inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter_record(path, 0, skip[1]))
            return
        if compressed:
            yield ByteRange(path, 0, None, True)
            return
        for start in range(0, size, self._split_bytes):
            yield ByteRange(path, start, min(start + self._split_bytes, size), False)

    @staticmethod
    def _skip_reason(path: str, size: int, compressed: bool) -> tuple[str, str] | None:
        if size == 0:
            return "empty", "empty file"
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.AUTO
                                  if compressed else CompressionTypes.UNCOMPRESSED) as f:
                head = f.read(BINARY_SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as err:
            return "unreadable", f"unreadable file: {type(err).__name__}: {err}"
        if not head:
            return "empty", "empty file (after decompression)"
        if b"\x00" in head:
            return "binary", f"binary file: NUL byte in the first {BINARY_SNIFF_BYTES} bytes"
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
        reader = _RangeReader(byte_range, self._batch_bytes, self._max_line_bytes)
        for offset, block, long_lines in reader.blocks():
            for line_offset, sample in long_lines:
                stats["lines_skipped_too_long"] += 1
                stats["lines"] += 1
                self._too_long.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter_record(
                    byte_range.path, line_offset,
                    f"line longer than {self._max_line_bytes} bytes", sample))
            if block:
                yield from self._decode(byte_range.path, offset, block, stats)
        self._lines.inc(stats["lines"])
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def _decode(self, path: str, offset: int, block: bytes, stats: Counter):
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
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter_record(
                    path, line_offset, f"not valid UTF-8: {err.reason} at byte {err.start}",
                    raw))
            line_offset += len(raw) + 1
        if good:
            yield TextBatch(path, offset, "\n".join(good), len(good))


class _RangeReader:
    """Yields (offset, block of whole lines, [(offset, head) of too-long lines skipped])."""

    def __init__(self, byte_range: ByteRange, batch_bytes: int, max_line_bytes: int) -> None:
        self._range, self._batch, self._max = byte_range, batch_bytes, max_line_bytes

    def blocks(self):
        rng = self._range
        compression = CompressionTypes.AUTO if rng.compressed else CompressionTypes.UNCOMPRESSED
        with FileSystems.open(rng.path, compression_type=compression) as f:
            pos, carry = 0, b""
            if rng.start > 0:  # the line that started before this range is not ours
                f.seek(rng.start - 1)
                skipped, carry = self._skip_line(f)
                pos = rng.start - 1 + skipped
            yield from self._read_from(f, pos, carry)

    def _skip_line(self, f) -> tuple[int, bytes]:
        """Reads past the next newline: (bytes up to and including it, bytes read after)."""
        consumed = 0
        while True:
            piece = f.read(self._batch)
            if not piece:
                return consumed, b""
            newline = piece.find(b"\n")
            if newline >= 0:
                return consumed + newline + 1, piece[newline + 1:]
            consumed += len(piece)

    def _read_from(self, f, line_at: int, carry: bytes):
        """Blocks of the lines that start in [line_at, end); ``line_at`` is a line start
        and ``carry`` the bytes from there already read."""
        end = self._range.end
        while end is None or line_at < end:
            chunk = f.read(self._batch)
            data = carry + chunk
            if not data:
                return
            cut = data.rfind(b"\n") + 1 if chunk else len(data)
            last_block = not chunk
            if end is not None and line_at + cut > end:
                # Lines starting at or after `end` belong to the next range: stop after
                # the line that holds byte end - 1.
                newline = data.find(b"\n", end - line_at - 1)
                cut = len(data) if newline < 0 else newline + 1
                last_block = True
            block, carry = data[:cut], data[cut:]
            yield from self._emit(line_at, block)
            line_at += cut
            if last_block or (end is not None and line_at >= end):
                return
            if len(carry) > self._max:  # already too long: skip to its end
                consumed, rest = self._skip_line(f)
                yield line_at, b"", [(line_at, carry[:80])]
                line_at += len(carry) + consumed
                carry = rest

    def _emit(self, offset: int, block: bytes):
        """(offset, lines, []) per run of acceptable lines; too-long lines reported."""
        if not block:
            return
        newlines = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
        starts = np.concatenate([[0], newlines + 1])
        stops = np.append(newlines, len(block))
        if (stops - starts).max() <= self._max:
            yield offset, block, []
            return
        run_start = 0
        for s, e in zip(starts.tolist(), stops.tolist()):
            if e - s > self._max:
                if s > run_start:
                    yield offset + run_start, block[run_start:s], []
                yield offset + s, b"", [(offset + s, block[s:s + 80])]
                run_start = e + 1
        if run_start < len(block):
            yield offset + run_start, block[run_start:], []


def write_parquet(table: pa.Table, path: str) -> None:
    """Writes ``table`` to ``path`` atomically (temporary name, then rename)."""
    tmp = f"{path}.tmp"
    with FileSystems.create(tmp) as f:
        pq.write_table(table, f, row_group_size=1 << 20)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def shard_name(directory: str, shard: int, num_shards: int) -> str:
    return FileSystems.join(directory, f"part-{shard:05d}-of-{num_shards:05d}.parquet")


def triplet_table(block: sp.csr_matrix, row_offset: int) -> pa.Table:
    """CSR block -> (row, col, value) sorted by (row, col)."""
    block = block.tocsr()
    block.sum_duplicates()
    block.sort_indices()
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int32) + np.int32(row_offset),
                     np.diff(block.indptr))
    return pa.table([pa.array(rows), pa.array(block.indices.astype(np.int32)),
                     pa.array(block.data.astype(np.float64))], schema=TRIPLET_SCHEMA)


class WriteTripletShardFn(beam.DoFn):
    """((shard, num_shards), CSR block) -> one sorted Parquet file; yields its stats."""

    def __init__(self, directory: str, rows_per_shard: int) -> None:
        self._directory, self._rows_per_shard = directory, rows_per_shard

    def process(self, element):
        (shard, num_shards), block = element
        table = triplet_table(block, shard * self._rows_per_shard)
        write_parquet(table, shard_name(self._directory, shard, num_shards))
        yield {"nnz": block.nnz, "total_mass": float(block.sum()), "shards": 1}


def vocab_table(tokens: list[str], counts: np.ndarray) -> pa.Table:
    return pa.table([pa.array(np.arange(len(tokens), dtype=np.int32)),
                     pa.array(tokens, pa.string()), pa.array(counts, pa.int64())],
                    schema=VOCAB_SCHEMA)


def vectors_table(tokens: list[str], vectors: np.ndarray) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32).ravel())
    return pa.table({"id": pa.array(np.arange(len(tokens), dtype=np.int32)),
                     "token": pa.array(tokens, pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})


def write_word2vec_text(tokens: list[str], vectors: np.ndarray, path: str) -> None:
    """word2vec text format: a ``count dim`` header, then ``token v1 ... vdim`` per line."""
    bad = [t for t in tokens if not t or any(ch.isspace() for ch in t)]
    if bad:
        raise ValueError(f"{len(bad)} tokens contain whitespace and cannot be written in "
                         f"word2vec text format, e.g. {bad[0]!r}; check --token-pattern")
    tmp = f"{path}.tmp"
    with FileSystems.create(tmp) as f:
        f.write(f"{len(tokens)} {vectors.shape[1]}\n".encode())
        for start in range(0, len(tokens), 4096):
            rows = vectors[start:start + 4096]
            lines = [token + " " + " ".join(map("{:.6g}".format, row))
                     for token, row in zip(tokens[start:start + 4096], rows.tolist())]
            f.write(("\n".join(lines) + "\n").encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_json(payload: dict, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write((json.dumps(payload, indent=1, sort_keys=True) + "\n").encode())


def read_triplets(directory: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """All shards of a triplet directory -> one CSR matrix (for evaluation and tests)."""
    files = sorted(m.path for m in FileSystems.match([FileSystems.join(
        directory, "part-*.parquet")])[0].metadata_list)
    if not files:
        raise FileNotFoundError(f"no Parquet shards under {directory}")
    table = pa.concat_tables(pq.read_table(FileSystems.open(p)) for p in files)
    return sp.csr_matrix((table["value"].to_numpy(), (table["row"].to_numpy(),
                                                      table["col"].to_numpy())), shape=shape)


def read_vocab(directory: str) -> tuple[list[str], np.ndarray]:
    files = sorted(m.path for m in FileSystems.match([FileSystems.join(
        directory, "part-*.parquet")])[0].metadata_list)
    table = pa.concat_tables(pq.read_table(FileSystems.open(p)) for p in files).sort_by("id")
    return table["token"].to_pylist(), table["count"].to_numpy()


def write_vocabulary(vocab, directory: str) -> dict:
    """Vocabulary (tokens, counts) -> ``vocab/part-00000-of-00001.parquet``; its stats."""
    write_parquet(vocab_table(vocab.tokens, vocab.counts), shard_name(directory, 0, 1))
    return vocab.stats()


def write_embedding(embedding, directory: str, word2vec_path: str) -> dict:
    """Embedding -> Parquet (id, token, vector) and word2vec text; its summary section."""
    write_parquet(vectors_table(embedding.tokens, embedding.vectors),
                  shard_name(directory, 0, 1))
    write_word2vec_text(embedding.tokens, embedding.vectors, word2vec_path)
    norms = np.linalg.norm(embedding.vectors, axis=1)
    return {"svd": {"dim": int(embedding.vectors.shape[1]), "words": len(embedding.tokens),
                    "zero_rows": int(np.count_nonzero(norms == 0)),
                    "singular_values_top10": [round(float(s), 6)
                                              for s in embedding.singular_values[:10]]}}


OUTPUT_PATTERNS = ("summary.json", "vectors.txt", "vocab/*", "cooccurrence/*", "ppmi/*",
                   "vectors/*", f"{DEAD_LETTER}/*")


class OutputExistsError(ValueError):
    """--output already holds a run's results and --overwrite was not given."""


def prepare_output(layout: OutputLayout, overwrite: bool) -> None:
    """Refuses to mix two runs' files in one directory; --overwrite deletes the old ones."""
    found = []
    for result in FileSystems.match([layout.join(p) for p in OUTPUT_PATTERNS]):
        found.extend(m.path for m in result.metadata_list)
    if not found:
        return
    if not overwrite:
        raise OutputExistsError(
            f"--output {layout.root} already holds {len(found)} result files of an earlier "
            f"run (e.g. {found[0]}); pass --overwrite to replace them or pick another "
            "directory")
    LOGGER.info("--overwrite: deleting %d earlier result files under %s", len(found),
                layout.root)
    FileSystems.delete(found)


class InputError(ValueError):
    """--input matches no file."""


def check_input(pattern: str) -> None:
    """Fails early when a local --input glob matches nothing (remote globs: at run time)."""
    if "://" in pattern:
        return
    if not FileSystems.match([pattern])[0].metadata_list:
        raise InputError(f"--input {pattern!r} matches no files")
