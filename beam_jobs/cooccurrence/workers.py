"""Local helper processes for ``--processes N``: tokenizing and counting on N cores.

Python's regex tokenizer holds the GIL, so a DoFn instance uses more than one core only
through processes. Both helpers start their processes in ``DoFn.setup`` and keep no state
the DoFn does not collect:

* ``TokenizeWorkers``: each process tokenizes the batches sent to it (round robin) into
  its own spill file; ``finish`` returns every process's (token counts, ``Spill``), so
  a bundle yields N spills of about equal size.
* ``CountWorkers``: N processes counting whole spills (``count_spill``), one spill at a
  time each: each spill's pairs are counted in one process into its own partial matrices,
  which the DoFn sums per row shard as it sums any partials.

The processes come from a ``forkserver``: ``DoFn.setup`` runs inside a Beam runner that
already has threads (gRPC, the bundle executor), and a plain ``fork`` there copies their
locks in whatever state they are in. The fork server is a fresh single-threaded
interpreter that has imported this module once; each helper is forked from it.

A helper that dies (killed, out of memory, crashed) is noticed at once: every wait is on
the helper's pipe *and* its process sentinel, and the DoFn raises ``WorkerError`` naming
the helper, its pid and its exit code or signal, so the job fails (exit 1, uncommitted)
instead of waiting for a reply that cannot come.

Two things keep the helpers' fixed and per-token costs down (measured in
docs/cooccurrence.md, "Where the time goes"): ``start_fork_server`` lets the driver start
the fork server (an interpreter importing numpy, scipy and Beam's file systems, about a
second) while it builds and starts the pipeline, instead of the runner waiting for it in
``DoFn.setup``; and each helper turns numpy's transparent-huge-page advice off
(``small_pages``): the counters allocate and free arrays of tens of MB per fold, and on a
kernel whose THP ``defrag`` setting is ``madvise`` every such advised allocation may
compact memory synchronously, which cost as much system time as the counting itself.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait

import numpy as np
import scipy.sparse as sp

from beam_jobs.cooccurrence.counting import PairCounter, TokenIds, Tokenizer
from beam_jobs.cooccurrence.spill import Spill, SpillWriter, read_chunks
from beam_jobs.cooccurrence.spill import delete as delete_spill
from mlbatch.errors import WorkerError

try:
    from numpy._core import multiarray as np_multiarray
except ImportError:  # numpy < 2 (a Dataflow worker's own numpy, say)
    from numpy.core import multiarray as np_multiarray

_FINISH = "finish"
_LINE_BREAK = np.array([TokenIds.LINE_BREAK], np.int32)


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # used when the server starts, once
    return context


def start_fork_server() -> None:
    """Starts the helpers' fork server now, without waiting for it: it imports this
    module in its own interpreter while the caller goes on (idempotent)."""
    _context()
    forkserver.ensure_running()


def small_pages() -> None:
    """Turns numpy's ``madvise(MADV_HUGEPAGE)`` on large arrays off in this process,
    unless ``NUMPY_MADVISE_HUGEPAGE`` says otherwise (numpy's own switch, read at import).
    Values and results do not change; only how the kernel backs freshly allocated
    memory does."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    setter = getattr(np_multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


def exit_reason(exitcode: int | None) -> str:
    """'exit code 3', 'signal SIGKILL' or 'no exit code yet' for a process's exitcode."""
    if exitcode is None:
        return "no exit code yet"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class Helper:
    """One helper process and the parent's end of its pipe."""

    def __init__(self, context, name: str, target, args: tuple) -> None:
        parent, child = context.Pipe()
        self.name = name
        self.process = context.Process(target=_serve, name=name, daemon=True,
                                       args=(dict(os.environ), target, child, *args))
        self.process.start()
        child.close()
        self.conn: Connection = parent

    def describe(self) -> str:
        return f"{self.name} (pid {self.process.pid})"

    def died(self) -> WorkerError:
        self.process.join(timeout=1)
        return WorkerError(f"{self.describe()} died before replying: "
                           f"{exit_reason(self.process.exitcode)}")

    def send(self, message) -> None:
        try:
            self.conn.send(message)
        except OSError as err:
            raise self.died() from err

    def receive(self):
        """The helper's next reply; WorkerError at once if it dies instead."""
        ready = wait([self.conn, self.process.sentinel])
        if self.conn not in ready:
            raise self.died()
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError) as err:
            raise self.died() from err
        if status == "error":
            raise WorkerError(f"{self.describe()} failed:\n{value}")
        return value

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


def _serve(environ: dict[str, str], target, conn: Connection, *args) -> None:
    """A helper's main: the parent's environment as it is now (the fork server's is the
    one it started with: e.g. STORAGE_EMULATOR_HOST or credentials set since), then
    ``target``."""
    os.environ.clear()
    os.environ.update(environ)
    small_pages()
    target(conn, *args)


def _start(role: str, processes: int, target, args: tuple) -> list[Helper]:
    context, helpers = _context(), []
    try:
        for index in range(processes):
            helpers.append(Helper(context, f"{role} helper {index}", target, args))
    except BaseException:
        _close_all(helpers)
        raise
    return helpers


def _close_all(helpers: list[Helper]) -> None:
    for helper in helpers:
        helper.close()


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
    """``processes`` tokenizing helpers, each writing its own spill."""

    def __init__(self, tokenizer: Tokenizer, directory: str, processes: int) -> None:
        self.helpers = _start("tokenizing", processes, _tokenize_loop, (tokenizer, directory))
        self._next = 0

    def submit(self, text: str) -> None:
        helper = self.helpers[self._next]
        self._next = (self._next + 1) % len(self.helpers)
        helper.send(text)

    def finish(self) -> list[tuple[list[tuple[str, int]], Spill | None]]:
        """Every process's (token counts, spill or None) since the last ``finish``."""
        for helper in self.helpers:
            helper.send(_FINISH)
        return [helper.receive() for helper in self.helpers]

    def close(self) -> None:
        _close_all(self.helpers)


def count_spill(spill: Spill, table: np.ndarray, params: dict, chunk_ids: int,
                shard_nnz: int) -> tuple[list[sp.csr_matrix], int, int]:
    """Counts one spill: (partial matrices, kept tokens, pair occurrences); deletes it.

    ``table`` maps the spill's first-seen ids to vocabulary ids; ``params`` are
    ``PairCounter``'s. A partial is flushed whenever it holds ``shard_nnz`` entries.
    """
    counter = PairCounter(**params)
    partials, kept = [], 0
    for chunk in read_chunks(spill, chunk_ids):
        ids = table[chunk]
        kept += int(np.count_nonzero(ids >= 0))
        counter.add(ids)
        if counter.nnz >= shard_nnz:
            partials.append(counter.flush())  # folds the buffered pairs: count them after
    partials.append(counter.flush())
    pairs = counter.pair_occurrences
    delete_spill(spill)
    return partials, kept, pairs


def _call_loop(conn: Connection, fn) -> None:
    while True:
        args = conn.recv()
        if args is None:
            return
        try:
            reply = ("ok", fn(*args))
        except Exception:  # noqa: BLE001 - raised again in the DoFn
            reply = ("error", traceback.format_exc())
        conn.send(reply)


class CallWorkers:
    """``processes`` helpers calling ``fn`` (a module-level function), one call at a time
    each; results in submission order."""

    def __init__(self, processes: int, fn, role: str) -> None:
        self.helpers = _start(role, processes, _call_loop, (fn,))
        self._queue: list[tuple[int, tuple]] = []
        self._busy: dict[Helper, int] = {}
        self._done: dict[int, tuple] = {}
        self._submitted = 0

    def submit(self, *args) -> None:
        self._queue.append((self._submitted, args))
        self._submitted += 1
        self._dispatch()

    def results(self):
        """The results of every spill submitted since the last call, in order."""
        while self._queue or self._busy:
            self._dispatch()
            conns = {helper.conn: helper for helper in self._busy}
            sentinels = {helper.process.sentinel: helper for helper in self._busy}
            for ready in wait([*conns, *sentinels]):
                helper = conns.get(ready) or sentinels[ready]
                if helper in self._busy:
                    self._done[self._busy.pop(helper)] = helper.receive()
        done, self._done, self._submitted = self._done, {}, 0
        for index in range(len(done)):
            yield done[index]

    def _dispatch(self) -> None:
        for helper in self.helpers:
            if not self._queue:
                return
            if helper not in self._busy:
                index, args = self._queue.pop(0)
                helper.send(args)
                self._busy[helper] = index

    def close(self) -> None:
        _close_all(self.helpers)


class CountWorkers(CallWorkers):
    """``processes`` counting helpers; each counts one spill at a time (``count_spill``)."""

    def __init__(self, processes: int) -> None:
        super().__init__(processes, count_spill, "counting")
