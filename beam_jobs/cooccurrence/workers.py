"""Local helper processes for ``--processes N``: tokenizing and counting on N cores.

Python's regex tokenizer holds the GIL, so a DoFn instance uses more than one core only
through processes. Both helpers fork their processes in ``DoFn.setup`` (Linux ``fork``:
nothing is re-imported) and keep no state the DoFn does not collect:

* ``TokenizeWorkers``: each process tokenizes the batches sent to it (round robin) into
  its own spill file; ``finish`` returns every process's (token counts, ``Spill``), so
  a bundle yields N spills of about equal size.
* ``CountWorkers``: a pool counting whole spills (``count_spill``): each spill's pairs
  are counted in one process into its own partial matrices, which the DoFn sums per row
  shard as it sums any partials. Processes never write the same memory.
"""
from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.connection import Connection

import numpy as np
import scipy.sparse as sp

from beam_jobs.cooccurrence.counting import PairCounter, TokenIds, Tokenizer
from beam_jobs.cooccurrence.spill import Spill, SpillWriter, read_chunks
from beam_jobs.cooccurrence.spill import delete as delete_spill
from mlbatch.errors import WorkerError

_FINISH = "finish"
_LINE_BREAK = np.array([TokenIds.LINE_BREAK], np.int32)


def _context():
    return multiprocessing.get_context("fork")


def tokenize_batches(ids: TokenIds, writer: SpillWriter, text: str) -> None:
    """Tokenizes one batch of whole lines into ``writer`` (the batch end is a line end)."""
    writer.write(ids.ids(text))
    writer.write(_LINE_BREAK)


def _tokenize_loop(conn: Connection, tokenizer: Tokenizer, directory: str) -> None:
    ids, writer, error = TokenIds(tokenizer), None, None
    while True:
        message = conn.recv()
        if message is None:
            return
        if message == _FINISH:
            spill = None if writer is None else writer.close(ids.tokens)
            conn.send(("error", error) if error else ("ok", (ids.token_counts(), spill)))
            ids, writer, error = TokenIds(tokenizer), None, None
            continue
        if error is None:
            try:
                writer = writer or SpillWriter(directory)
                tokenize_batches(ids, writer, message)
            except Exception:  # noqa: BLE001 - reported to the DoFn at finish
                error = traceback.format_exc()


class TokenizeWorkers:
    """``processes`` forked tokenizers, each writing its own spill."""

    def __init__(self, tokenizer: Tokenizer, directory: str, processes: int) -> None:
        self._conns, self._procs, self._next = [], [], 0
        context = _context()
        for _ in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(target=_tokenize_loop, args=(child, tokenizer, directory),
                                   daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def submit(self, text: str) -> None:
        conn = self._conns[self._next]
        self._next = (self._next + 1) % len(self._conns)
        _send(conn, text)

    def finish(self) -> list[tuple[list[tuple[str, int]], Spill | None]]:
        """Every process's (token counts, spill or None) since the last ``finish``."""
        for conn in self._conns:
            _send(conn, _FINISH)
        return [_receive(conn) for conn in self._conns]

    def close(self) -> None:
        for conn, proc in zip(self._conns, self._procs):
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def _send(conn: Connection, message) -> None:
    try:
        conn.send(message)
    except OSError as err:
        raise WorkerError(f"a tokenizing process has exited: {err}") from err


def _receive(conn: Connection):
    try:
        status, value = conn.recv()
    except EOFError as err:
        raise WorkerError("a tokenizing process exited before finishing") from err
    if status == "error":
        raise WorkerError(f"a tokenizing process failed:\n{value}")
    return value


def count_spill(spill: Spill, table: np.ndarray, params: dict, chunk_ids: int,
                shard_nnz: int) -> tuple[list[sp.csr_matrix], int, int]:
    """Counts one spill: (partial matrices, kept tokens, pair occurrences); deletes it.

    ``table`` maps the spill's first-seen ids to vocabulary ids; ``params`` are
    ``PairCounter``'s. A partial is flushed whenever it holds ``shard_nnz`` entries.
    """
    counter = PairCounter(**params)
    partials, kept, pairs = [], 0, 0
    for chunk in read_chunks(spill, chunk_ids):
        ids = table[chunk]
        kept += int(np.count_nonzero(ids >= 0))
        counter.add(ids)
        if counter.nnz >= shard_nnz:
            pairs += counter.pair_occurrences
            partials.append(counter.flush())
            counter.pair_occurrences = 0
    pairs += counter.pair_occurrences
    partials.append(counter.flush())
    delete_spill(spill)
    return partials, kept, pairs


class CountWorkers:
    """A pool of ``processes`` forked processes running ``count_spill``."""

    def __init__(self, processes: int) -> None:
        self._pool = _context().Pool(processes)
        self._pending: list = []

    def submit(self, *args) -> None:
        self._pending.append(self._pool.apply_async(count_spill, args))

    def results(self):
        """The results of every spill submitted since the last call, in order."""
        pending, self._pending = self._pending, []
        for result in pending:
            yield result.get()

    def close(self) -> None:
        self._pool.terminate()
