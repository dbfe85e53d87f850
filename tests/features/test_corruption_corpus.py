"""A generated corruption corpus through the real feature job: every physical line of
every input file has one exact expected outcome, and every accepted row carries the
features the clean run gave the same original record.

The corpus holds each record of the clean flights slice exactly once (some re-encoded:
CRLF, CR-only line ends, a BOM, quoted fields), so the valid training rows, and with them
every full-pass statistic, are those of the clean run. Everything else is either broken
(a dead letter, reason and line checked) or a new valid record with no arrival delay (an
excluded row, checked by its example_id), so it cannot move the statistics.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from beam_jobs.common.deadletter import MAX_RAW_CHARS
from tests.conftest import feature_job_in_process

CHUNK_ROWS = 400  # blocks of physical lines: 1-400, 401-800, ... (header = line 1)
ARR_DELAY, CARRIER, TAILNUM, DISTANCE = 8, 9, 11, 15


def _lines_in(raw: bytes) -> int:
    return max(len(re.findall(rb"\r\n|\r|\n", raw.rstrip(b"\r\n"))) + 1, 1)


@dataclass
class CorpusFile:
    """One input file being written, with the outcome expected for each physical line."""
    name: str
    eol: bytes = b"\n"
    next_line: int = 2
    parts: list[bytes] = field(default_factory=list)
    expect: dict[int, tuple] = field(default_factory=dict)

    def add(self, raw: bytes, outcome: tuple, eol: bytes | None = None) -> int:
        line = self.next_line
        raw += self.eol if eol is None else eol
        self.parts.append(raw)
        self.expect[line] = outcome
        n = _lines_in(raw)
        for k in range(1, n):
            self.expect[line + k] = ("part of", line)
        self.next_line += n
        return line


def _fields(rec: bytes) -> list[bytes]:
    return rec.rstrip(b"\r\n").split(b",")


def _join(fields: list[bytes]) -> bytes:
    return b",".join(fields)


def _new_excluded(orig: bytes, **changes: bytes) -> bytes:
    """A new valid record (a changed copy of an original) without an arrival delay."""
    f = _fields(orig)
    f[ARR_DELAY] = b"NA"
    for k, v in changes.items():
        f[{"tailnum": TAILNUM, "carrier": CARRIER, "distance": DISTANCE}[k]] = v
    return _join(f)


def build_corpus(slice_dir: Path, out: Path) -> tuple[list[CorpusFile], Path]:
    lines = (slice_dir / "flights.csv").read_bytes().splitlines()
    header, originals = lines[0], list(enumerate(lines[1:], start=2))  # (original line, raw)
    queue = list(reversed(originals))

    def orig(f: CorpusFile, n: int = 1, encode=lambda r: r):
        for _ in range(min(n, len(queue))):
            line, raw = queue.pop()
            f.add(encode(raw), ("original", line))

    good = originals[0][1]
    a = CorpusFile("flights_a.csv")
    orig(a, 50)
    a.add(_join(_fields(good)[:18]), ("dead", "expected 19 fields, got 18"))
    a.add(good + b",extra", ("dead", "expected 19 fields, got 20"))
    far = _fields(good)
    far[DISTANCE] = b"far"
    a.add(_join(far), ("dead", "distance: not a finite number: 'far'"))
    utf = _fields(good)
    utf[TAILNUM] = b"N1\xff\xfe"
    a.add(_join(utf), ("dead", f"invalid UTF-8 at byte {len(_join(utf[:TAILNUM])) + 3}"))
    a.add(b",".join([b"NA"] * 19), ("dead", "year: missing required value; month: missing"))
    a.add(b",".join([b""] * 19), ("dead", "year: missing required value; month: missing"))
    month = _fields(good)
    month[1] = b"13"
    a.add(_join(month), ("dead", "month: '13' above maximum 12"))
    a.add(b"", ("dead", "blank line"))
    nul = _fields(good)
    nul[TAILNUM] = b"N1\x004228"
    a.add(_join(nul), ("dead", f"NUL byte at byte {len(_join(nul[:TAILNUM])) + 3}"))
    big = _join(_fields(good)[:TAILNUM] + [b"N" * (2 << 20)] + _fields(good)[TAILNUM + 1:])
    text = big.decode()
    a.add(big, ("dead", "malformed CSV: field larger than field limit (131072)",
                f"{text[:MAX_RAW_CHARS]}... [{len(text)} characters in all]".encode()))
    orig(a, 40)
    # quoted line breaks inside a chunk: a new valid record, and a broken one (raw whole)
    a.add(_new_excluded(good, tailnum=b'"N1\n42\n28"'), ("excluded",))
    broken = _fields(good)
    broken[TAILNUM], broken[DISTANCE] = b'"N1\n4228"', b"far"
    a.add(_join(broken), ("dead", "distance: not a finite number: 'far'", _join(broken)))
    # quoted fields with the same values (originals), and an escaped quote (new record)
    orig(a, 20, encode=lambda r: _join([b'"' + v + b'"' if i in (CARRIER, TAILNUM) else v
                                        for i, v in enumerate(_fields(r))]))
    a.add(_new_excluded(good, tailnum=b'"N1""4228"'), ("excluded",))
    a.add(_new_excluded(good, carrier=b'"U""A\n"""'), ("excluded",))
    # quoted line breaks across the chunk boundaries after lines 400 and 800
    orig(a, CHUNK_ROWS - a.next_line)
    assert a.next_line == CHUNK_ROWS
    a.add(_new_excluded(good, tailnum=b'"N1\n4228"'), ("excluded",))
    orig(a, 2 * CHUNK_ROWS - a.next_line)
    broken[DISTANCE] = b"-5"
    a.add(_join(broken), ("dead", "distance: '-5' below minimum 0", _join(broken)))
    orig(a, 400)
    a.add(b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EW", ("dead", "expected 19 fields, got 13"),
          eol=b"")  # the last line, truncated: no newline

    b = CorpusFile("flights_b.csv", eol=b"\r\n")  # BOM header, CRLF line ends
    orig(b, 500)
    b.add(_new_excluded(good, tailnum=b'"N1\r\n4228"'), ("excluded",))
    orig(b, 300)
    c = CorpusFile("flights_c.csv", eol=b"\r")  # CR-only line ends
    orig(c, 600)
    c.add(b"", ("dead", "blank line"))
    orig(c, 10)
    c.add(_new_excluded(good, tailnum=b'"N1\r4228"'), ("excluded",))
    orig(c, len(queue) - 3)
    d = CorpusFile("flights_d.csv")
    orig(d, 3)
    start = d.next_line
    reason = (f"unterminated quoted field: the record starting on line {start} runs to the "
              "end of the file (3 lines)")
    d.add(_new_excluded(good, tailnum=b'"N1'), ("dead", reason))
    d.add(_new_excluded(good), ("part of", start))  # swallowed by the open quote
    d.add(_new_excluded(good), ("part of", start))
    assert not queue
    out.mkdir()
    (out / a.name).write_bytes(header + b"\n" + b"".join(a.parts))
    (out / b.name).write_bytes(b"\xef\xbb\xbf" + header + b"\r\n" + b"".join(b.parts))
    (out / c.name).write_bytes(header + b"\r" + b"".join(c.parts))
    (out / d.name).write_bytes(header + b"\n" + b"".join(d.parts))
    (out / "flights_empty.csv").write_bytes(b"")
    (out / "flights_header_only.csv").write_bytes(header + b"\n")
    for t in ("weather", "planes"):
        shutil.copy(slice_dir / f"{t}.csv", out / f"{t}.csv")
    return [a, b, c, d], out


def _rows(d: Path) -> dict[str, dict]:
    t = pq.read_table(sorted(d.glob("*.parquet")))
    return {r["example_id"]: r for r in t.to_pylist()}


@pytest.fixture(scope="module")
def corrupted_run(flights_slice, tmp_path_factory):
    files, inputs = build_corpus(flights_slice, tmp_path_factory.mktemp("corpus") / "in")
    out = tmp_path_factory.mktemp("corpus") / "out"
    # the corpus is dense with bad records on purpose: lift the default 1% dead-letter limit
    feature_job_in_process(inputs, out, "--chunk-rows", str(CHUNK_ROWS),
                           "--max-dead-letter-share", "0.5")
    return files, inputs, out


def test_every_physical_line_has_its_exact_outcome(corrupted_run):
    files, inputs, out = corrupted_run
    summary = json.loads((out / "summary.json").read_text())
    dead_list = pq.read_table(sorted((out / "dead_letter").glob("*.parquet"))).to_pylist()
    dead = {(d["source"], d["line"]): d for d in dead_list}
    rows = {**_rows(out / "train"), **_rows(out / "eval")}
    excluded = set(_rows(out / "excluded"))
    n_records = n_lines = n_dead = 0
    for f in files:
        src = str(inputs / f.name)
        assert sorted(f.expect) == list(range(2, f.next_line)), f.name
        for line, outcome in f.expect.items():
            kind, key = outcome[0], (src, line)
            n_lines += 1
            if kind == "part of":
                assert key not in dead and f"{src}:{line}" not in rows, key
                continue
            n_records += 1
            if kind == "dead":
                n_dead += 1
                assert dead[key]["reason"].startswith(outcome[1]), (key, dead[key]["reason"])
                if len(outcome) > 2:
                    assert dead[key]["raw"] == outcome[2].decode()
            elif kind == "excluded":
                assert f"{src}:{line}" in excluded, key
            else:
                assert f"{src}:{line}" in rows or f"{src}:{line}" in excluded, key
    assert len(dead_list) == n_dead  # no dead letter beyond the expected ones
    t = summary["tables"]["flights"]
    assert (t["read"], t["lines"], t["dead_letter"]) == (n_records, n_lines, n_dead)
    assert t["read"] == t["valid"] + t["dead_letter"] and summary["reconciled"]
    files_read = dict(map(tuple, t["files"]))
    assert files_read[str(inputs / "flights_empty.csv")] == 0
    assert files_read[str(inputs / "flights_header_only.csv")] == 0


def test_accepted_rows_carry_the_clean_runs_features(corrupted_run, flights_features,
                                                     flights_slice):
    files, inputs, out = corrupted_run
    clean_src = str(flights_slice / "flights.csv")
    clean = {**_rows(flights_features / "train"), **_rows(flights_features / "eval")}
    got = {**_rows(out / "train"), **_rows(out / "eval")}
    to_clean = {f"{inputs / f.name}:{line}": f"{clean_src}:{o[1]}"
                for f in files for line, o in f.expect.items() if o[0] == "original"}
    assert {to_clean[i] for i in got} == set(clean)  # same records, each once
    for example_id, row in got.items():
        want = clean[to_clean[example_id]]
        for name, value in row.items():
            if name == "example_id":
                continue
            if isinstance(value, float):
                assert np.isclose(value, want[name], rtol=1e-5, atol=1e-6), (example_id, name)
            else:
                assert value == want[name], (example_id, name)
    excl_clean = {i.rsplit(":", 1)[1] for i in _rows(flights_features / "excluded")}
    excl_orig = {to_clean[i].rsplit(":", 1)[1] for i in _rows(out / "excluded") if i in to_clean}
    assert excl_orig == excl_clean
