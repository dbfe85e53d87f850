"""Token-id spill files: the corpus is tokenized once, its ids read back for pass 2.

Pass 1 writes each bundle's first-seen token ids (``counting.TokenIds``, int32
little-endian, 0 at every line break) to one file under ``<output>/_spill/`` through
Beam's file systems (local or ``gs://``), and emits a ``Spill`` naming that file and the
bundle's id -> token list. Pass 2 reads the file back in chunks cut at line breaks (so no
window crosses a chunk), maps the ids to vocabulary ids and deletes the file. A file holds
4 bytes per token: the corpus text is never held in memory, only one chunk at a time.
"""
from __future__ import annotations

import typing
import uuid
from collections.abc import Iterator

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.cooccurrence.counting import TokenIds
from mlbatch.errors import JobError

SPILL_DIR = "_spill"
ID_BYTES = 4
_DTYPE = np.dtype("<i4")


class SpillError(RuntimeError, JobError):
    """A spill file is not what pass 1 wrote (truncated, or written twice)."""


class Spill(typing.NamedTuple):
    """One bundle's id stream: ``tokens[i]`` is the token of id ``i`` in ``path``."""
    path: str
    tokens: list[str]
    ids: int  # ids written, line breaks included


def spill_dir(output: str) -> str:
    return FileSystems.join(output, SPILL_DIR)


class SpillWriter:
    """Appends id arrays to a new file under ``directory``."""

    def __init__(self, directory: str) -> None:
        self.path = FileSystems.join(directory, f"ids-{uuid.uuid4().hex}.i32")
        self._file = FileSystems.create(self.path, mime_type="application/octet-stream",
                                        compression_type=CompressionTypes.UNCOMPRESSED)
        self.ids = 0

    def write(self, ids: np.ndarray) -> None:
        self._file.write(ids.astype(_DTYPE, copy=False).tobytes())
        self.ids += ids.size

    def close(self, tokens: list[str]) -> Spill:
        self._file.close()
        return Spill(self.path, tokens, self.ids)


def read_chunks(spill: Spill, chunk_ids: int) -> Iterator[np.ndarray]:
    """The ids of ``spill`` in chunks of about ``chunk_ids`` that end at a line break
    (a chunk grows past ``chunk_ids`` only for a longer line); raises SpillError when the
    file does not hold exactly ``spill.ids`` ids."""
    read, carry = 0, np.empty(0, _DTYPE)
    with FileSystems.open(spill.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        while True:
            raw = f.read(chunk_ids * ID_BYTES)
            if len(raw) % ID_BYTES:
                raise SpillError(f"{spill.path}: truncated ({len(raw)} bytes read)")
            block = np.frombuffer(raw, _DTYPE)
            read += block.size
            data = np.concatenate([carry, block]) if carry.size else block
            if not raw:
                break
            breaks = np.flatnonzero(data == TokenIds.LINE_BREAK)
            cut = int(breaks[-1]) + 1 if breaks.size else 0
            if cut:
                yield data[:cut]
            carry = data[cut:]
    if carry.size:
        yield carry
    if read != spill.ids:
        raise SpillError(f"{spill.path}: {read} ids read, {spill.ids} written")


def delete(spill: Spill) -> None:
    FileSystems.delete([spill.path])
