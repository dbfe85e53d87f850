"""Byte ranges of a text file -> blocks of whole lines (no Beam transforms here).

A line belongs to the range its first byte is in, as in Beam's own text source, so the
ranges of a file read every line exactly once. Lines longer than ``max_line_bytes`` are
not returned: their offset and first bytes are reported instead, and memory stays bounded
by the batch size even for a line of a gigabyte (it is skipped while streaming).
Offsets are byte offsets in the file (in the decompressed bytes for compressed files).
"""
from __future__ import annotations

import typing
from collections.abc import Iterator

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

HEAD_BYTES = 1024  # bytes of a skipped over-long line kept for its dead-letter record


class ByteRange(typing.NamedTuple):
    path: str
    start: int
    end: int | None  # None: to the end of the file (compressed files)
    compressed: bool


class LongLine(typing.NamedTuple):
    offset: int
    head: bytes  # its first HEAD_BYTES bytes


class Block(typing.NamedTuple):
    """``data``: whole lines (``\\n``-separated) starting at ``offset``; ``skipped``: the
    over-long lines left out just before them."""
    offset: int
    data: bytes
    skipped: list[LongLine]


class RangeReader:
    """Yields the ``Block``s of the lines that start in one ``ByteRange``."""

    def __init__(self, byte_range: ByteRange, batch_bytes: int, max_line_bytes: int) -> None:
        self._range, self._batch, self._max = byte_range, batch_bytes, max_line_bytes

    def blocks(self) -> Iterator[Block]:
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

    def _read_from(self, f, line_at: int, carry: bytes) -> Iterator[Block]:
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
            yield from self._split_long(line_at, block)
            line_at += cut
            if last_block or (end is not None and line_at >= end):
                return
            if len(carry) > self._max:  # already too long: skip to its end
                consumed, rest = self._skip_line(f)
                yield Block(line_at, b"", [LongLine(line_at, carry[:HEAD_BYTES])])
                line_at += len(carry) + consumed
                carry = rest

    def _split_long(self, offset: int, block: bytes) -> Iterator[Block]:
        """One Block per run of acceptable lines; over-long lines reported, not kept."""
        if not block:
            return
        newlines = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
        starts = np.concatenate([[0], newlines + 1])
        stops = np.append(newlines, len(block))
        if (stops - starts).max() <= self._max:
            yield Block(offset, block, [])
            return
        run_start = 0
        for s, e in zip(starts.tolist(), stops.tolist()):
            if e - s > self._max:
                if s > run_start:
                    yield Block(offset + run_start, block[run_start:s], [])
                yield Block(offset + s, b"", [LongLine(offset + s, block[s:s + HEAD_BYTES])])
                run_start = e + 1
        if run_start < len(block):
            yield Block(offset + run_start, block[run_start:], [])
