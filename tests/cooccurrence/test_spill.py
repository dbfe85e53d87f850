"""Spill files: ids come back whole, in chunks cut at line breaks; a damaged file is an error."""
from __future__ import annotations

import numpy as np
import pytest

from beam_jobs.cooccurrence.spill import SpillError, SpillWriter, delete, read_chunks

# 0 is the line break; the lines are [5 6 7], [8], [], [9 9 9 9 9 9], [4 3].
IDS = np.array([5, 6, 7, 0, 8, 0, 0, 9, 9, 9, 9, 9, 9, 0, 4, 3], np.int32)


def write(tmp_path, *arrays):
    writer = SpillWriter(str(tmp_path))
    for array in arrays:
        writer.write(array)
    return writer.close(["\n", "a"])


@pytest.mark.parametrize("chunk_ids", [1, 2, 4, 100])
def test_chunks_are_whole_lines_and_add_up(tmp_path, chunk_ids):
    spill = write(tmp_path, IDS[:5], IDS[5:])
    chunks = list(read_chunks(spill, chunk_ids))
    np.testing.assert_array_equal(np.concatenate(chunks), IDS)
    assert all(c[-1] == 0 for c in chunks[:-1])  # only the last may end mid-line
    assert spill.ids == IDS.size and spill.tokens == ["\n", "a"]
    delete(spill)
    assert list(tmp_path.iterdir()) == []


def test_truncated_or_short_spill_is_an_error(tmp_path):
    spill = write(tmp_path, IDS)
    path = tmp_path / spill.path.rsplit("/", 1)[1]
    path.write_bytes(path.read_bytes()[:-2])  # half an id lost
    with pytest.raises(SpillError, match="truncated"):
        list(read_chunks(spill, 100))
    path.write_bytes(IDS[:-1].tobytes())  # one whole id lost
    with pytest.raises(SpillError, match=f"{spill.path}: 15 ids read, 16 written"):
        list(read_chunks(spill, 100))
