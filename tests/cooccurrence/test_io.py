"""The byte-range reader: every line read exactly once whatever the split and batch sizes."""
from __future__ import annotations

import gzip
import random

import pytest

from beam_jobs.cooccurrence.lines import ByteRange, RangeReader


def read_all(path, size: int, split: int, batch: int, max_line: int, compressed=False):
    kept, too_long = [], []
    starts = [0] if compressed else range(0, size, split)
    for start in starts:
        end = None if compressed else min(start + split, size)
        for _offset, block, long_lines in RangeReader(
                ByteRange(str(path), start, end, compressed), batch, max_line).blocks():
            too_long += [line.offset for line in long_lines]
            if block:
                lines = block.split(b"\n")
                kept += lines[:-1] if block.endswith(b"\n") else lines
    return kept, too_long


def expected_lines(data: bytes, max_line: int):
    lines = data.split(b"\n")
    lines = lines[:-1] if data.endswith(b"\n") else lines
    offsets, at = [], 0
    for line in lines:
        offsets.append(at)
        at += len(line) + 1
    return ([l for l in lines if len(l) <= max_line],
            [o for o, l in zip(offsets, lines) if len(l) > max_line])


def test_random_files_split_anywhere(tmp_path):
    rng = random.Random(7)
    path = tmp_path / "f.txt"
    for _ in range(400):
        lines = [bytes(rng.choice(b"ab \xff") for _ in range(rng.choice([0, 1, 3, 10, 25])))
                 for _ in range(rng.randint(1, 25))]
        data = b"\n".join(lines) + rng.choice([b"", b"\n"])
        if not data:
            continue
        path.write_bytes(data)
        max_line, batch, split = rng.randint(1, 20), rng.randint(1, 40), rng.randint(1, 50)
        assert read_all(path, len(data), split, batch, max_line) == \
            expected_lines(data, max_line), (data, max_line, batch, split)


@pytest.mark.parametrize("batch", [3, 1 << 20])
def test_gzip_file_is_one_range(tmp_path, batch):
    data = b"".join(f"line {i} the cat\n".encode() for i in range(500)) + b"x" * 50 + b"\nend"
    path = tmp_path / "f.txt.gz"
    path.write_bytes(gzip.compress(data))
    assert read_all(path, 0, 0, batch, 40, compressed=True) == expected_lines(data, 40)
