"""Physical lines of a CSV file -> whole records (RFC 4180), each with its first line.

A quoted field may hold line breaks, so a record can span several physical lines; a
reader that cuts a file into lines must put them back together before parsing, or every
later record gets its neighbour's line number. ``CsvSplitter`` does that, and cuts
chunks only between records.

Quoting follows RFC 4180 as Python's csv module and Arrow's CSV reader read it: a quote
opens a quoted field only at the start of a field (elsewhere it is an ordinary
character), ``""`` inside a quoted field is one quote, and the field ends at the next
single quote. A physical line ends at LF, CRLF or a lone CR (as in Python's universal
newlines and in both parsers). Line numbers count physical lines from 1, header
included.

Blocks without a quote or a lone CR (the common case) are passed through as they are:
one record per line, no Python work per line beyond the reader's own loop. A block
with quotes is first counted by Arrow's CSV reader (the same quoting rules, in C): as
many rows as lines means no record spans lines; only otherwise is it scanned line by
line in Python.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv

QUOTE = b'"'
_PHYSICAL_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_LONE_CR = re.compile(rb"\r(?!\n)")


@dataclass
class CsvChunk:
    """Whole records of one file: record i starts on physical line ``lines[i]`` and its
    bytes (line terminators included, quoted line breaks kept) are ``raw[i]``."""
    lines: range | list[int]
    raw: list[bytes]
    multiline: bool = False  # some record spans more than one physical line
    data: bytes | None = None  # b"".join(raw), when already built

    def __len__(self) -> int:
        return len(self.raw)

    def joined(self) -> bytes:
        if self.data is None:
            self.data = b"".join(self.raw)
        return self.data

    def part(self, start: int, stop: int | None = None) -> CsvChunk:
        """Records ``start:stop`` (a copy of the joined bytes is kept only for a tail)."""
        raw = self.raw[start:stop]
        data = None
        if self.data is not None and stop is None:
            data = self.data[sum(map(len, self.raw[:start])):]
        return CsvChunk(self.lines[start:stop], raw, self.multiline, data)


@dataclass
class Unterminated:
    """A quoted field still open at the end of the file: one record, never parsed."""
    line: int  # the physical line the record starts on
    raw: bytes
    num_lines: int

    @property
    def reason(self) -> str:
        lines = f"{self.num_lines} line" + ("s" if self.num_lines != 1 else "")
        return (f"unterminated quoted field: the record starting on line {self.line} "
                f"runs to the end of the file ({lines})")


def ends_in_quotes(line: bytes, inside: bool) -> bool:
    """Whether a quoted field is still open at the end of ``line``, given whether one
    was open at its start (``inside``; otherwise the line starts a record)."""
    pos = 0
    if not inside and line.startswith(QUOTE):
        inside, pos = True, 1
    while True:
        if inside:
            j = line.find(QUOTE, pos)
            if j < 0:
                return True
            if line[j + 1:j + 2] == QUOTE:  # "" is an escaped quote
                pos = j + 2
                continue
            inside, pos = False, j + 1
        else:  # a quote opens a field only right after a delimiter
            j = line.find(b',"', pos)
            if j < 0:
                return False
            inside, pos = True, j + 2


def physical_lines(line: bytes) -> list[bytes]:
    """One readline() result (ending at LF) split at lone CRs as well."""
    if b"\r" not in line or not _LONE_CR.search(line):
        return [line]
    return _PHYSICAL_LINE.findall(line)


def _one_record_per_line(block: list[bytes], data: bytes) -> bool:
    """Whether every line of a block (no lone CR in it) is a whole record: Arrow reads
    as many rows as there are lines, and the last line closes its quotes."""
    try:
        rows = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(include_columns=["f0"], check_utf8=False,
                                                 column_types={"f0": pa.binary()})).num_rows
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. ragged rows
        return False
    return rows == len(block) and not ends_in_quotes(block[-1], False)


def count_lines(raw: bytes) -> int:
    """Physical lines in a record's bytes."""
    return len(_PHYSICAL_LINE.findall(raw))


@dataclass
class CsvSplitter:
    """Feeds blocks of readline() results, returns chunks of whole records.

    A record still open at the end of a block is held back and completed by the next
    block; ``finish`` returns the held record if its quote never closed.
    """
    next_line: int = 1  # physical line number of the next line fed
    _pending: list[bytes] = field(default_factory=list)
    _pending_line: int = 0

    @property
    def lines_read(self) -> int:
        return self.next_line - 1

    def feed(self, block: list[bytes]) -> CsvChunk:
        data = b"".join(block)
        lone_cr = b"\r" in data and _LONE_CR.search(data) is not None
        if not self._pending and not lone_cr and (
                QUOTE not in data or _one_record_per_line(block, data)):
            first = self.next_line
            self.next_line += len(block)
            return CsvChunk(range(first, self.next_line), block, data=data)
        return self._split(block, lone_cr)

    def _split(self, block: list[bytes], lone_cr: bool) -> CsvChunk:
        lines, raw, multiline = [], [], False
        for readline_line in block:
            for line in physical_lines(readline_line) if lone_cr else (readline_line,):
                n = self.next_line
                self.next_line += 1
                if self._pending:
                    self._pending.append(line)
                    if not ends_in_quotes(line, True):
                        lines.append(self._pending_line)
                        raw.append(b"".join(self._pending))
                        self._pending, multiline = [], True
                elif QUOTE in line and ends_in_quotes(line, False):
                    self._pending, self._pending_line = [line], n
                else:
                    lines.append(n)
                    raw.append(line)
        return CsvChunk(lines, raw, multiline)

    def finish(self) -> Unterminated | None:
        if not self._pending:
            return None
        held, self._pending = self._pending, []
        return Unterminated(self._pending_line, b"".join(held), len(held))
