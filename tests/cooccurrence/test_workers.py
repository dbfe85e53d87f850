"""Helper processes of --processes: what they return, and a failure or a death surfacing
in the DoFn at once (named, with its traceback or its signal)."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from numpy._core import multiarray as np_multiarray

from beam_jobs.cooccurrence.counting import Tokenizer, remap_ids
from beam_jobs.cooccurrence.spill import SpillWriter, read_chunks
from beam_jobs.cooccurrence.workers import (CallWorkers, CountWorkers, TokenizeWorkers,
                                            WorkerError, small_pages)


def test_tokenizers_split_batches_round_robin_one_spill_each(tmp_path):
    workers = TokenizeWorkers(Tokenizer(), str(tmp_path), 2)
    try:
        for text in ["a b", "c a", "b b\na"]:
            workers.submit(text)
        done = workers.finish()
    finally:
        workers.close()
    (counts0, spill0), (counts1, spill1) = done
    # Process 0 got batches 1 and 3, process 1 batch 2; a line break closes each batch.
    assert dict(counts0) == {"a": 2, "b": 3} and dict(counts1) == {"c": 1, "a": 1}
    assert spill0.tokens == ["\n", "a", "b"] and spill1.tokens == ["\n", "c", "a"]
    np.testing.assert_array_equal(np.concatenate(list(read_chunks(spill0, 100))),
                                  [1, 2, 0, 2, 2, 0, 1, 0])
    np.testing.assert_array_equal(np.concatenate(list(read_chunks(spill1, 100))), [1, 2, 0])


def test_a_failing_tokenizer_is_an_error_with_its_traceback(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    workers = TokenizeWorkers(Tokenizer(), str(not_a_dir / "spill"), 1)
    try:
        workers.submit("a b")
        with pytest.raises(WorkerError, match=r"(?s)tokenizing helper 0 \(pid \d+\) failed:\n"
                                              r"Traceback.*NotADirectoryError"):
            workers.finish()
    finally:
        workers.close()


def test_a_killed_tokenizer_is_named_with_its_signal_not_waited_for(tmp_path):
    workers = TokenizeWorkers(Tokenizer(), str(tmp_path), 2)
    try:
        workers.submit("a b")
        victim = workers.helpers[1].process.pid
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerError, match=rf"^tokenizing helper 1 \(pid {victim}\) died "
                                              r"before replying: signal SIGKILL$"):
            workers.submit("c d")  # to the dead helper: refused, or its reply never comes
            workers.finish()
    finally:
        workers.close()


def test_counting_helpers_count_in_order_and_a_killed_one_is_named(tmp_path):
    spills = []
    for ids in ([1, 2, 0, 1], [2, 2, 0]):
        writer = SpillWriter(str(tmp_path))
        writer.write(np.array(ids, np.int32))
        spills.append(writer.close(["\n", "a", "b"]))
    params = {"window": 1, "weighting": "uniform", "direction": "symmetric", "vocab_size": 2}
    table = remap_ids(["\n", "a", "b"], {"a": 0, "b": 1})
    workers = CountWorkers(2)
    try:
        for spill in spills:
            workers.submit(spill, table, params, 100, 1000)
        (first, kept0, pairs0), (second, kept1, pairs1) = workers.results()
        assert (kept0, pairs0, kept1, pairs1) == (3, 1, 2, 1)  # left pairs: a-b; b-b
        assert first[0].toarray().tolist() == [[0, 1], [1, 0]]
        assert second[0].toarray().tolist() == [[0, 0], [0, 2]]
        victim = workers.helpers[0].process.pid
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerError, match=rf"^counting helper 0 \(pid {victim}\) died "
                                              r"before replying: signal SIGKILL$"):
            workers.submit(spills[0], table, params, 100, 1000)
            list(workers.results())
    finally:
        workers.close()


def test_helpers_see_the_environment_of_their_start_not_the_fork_servers(tmp_path,
                                                                         monkeypatch):
    # The fork server keeps the environment it started with; a helper started later must
    # see what the DoFn's process has then (a storage emulator, credentials...).
    first = TokenizeWorkers(Tokenizer(), str(tmp_path), 1)  # the server is running now
    first.close()
    monkeypatch.setenv("MLBATCH_TEST_HELPER_ENV", str(tmp_path / "set-after-start"))
    workers = CallWorkers(1, os.getenv, "test")
    try:
        workers.submit("MLBATCH_TEST_HELPER_ENV")
        assert list(workers.results()) == [str(tmp_path / "set-after-start")]
    finally:
        workers.close()


def test_helpers_and_small_pages_turn_numpy_huge_page_advice_off(monkeypatch):
    """numpy's madvise(MADV_HUGEPAGE) cost the counters as much system time as the counting
    on this VM (docs/cooccurrence.md): helpers run with it off; a user's
    NUMPY_MADVISE_HUGEPAGE is left alone. ``_set_madvise_hugepage`` returns the setting it
    replaces."""
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    workers = CallWorkers(1, np_multiarray._set_madvise_hugepage, "test")
    try:
        workers.submit(True)
        assert list(workers.results()) == [False]
    finally:
        workers.close()
    before = np_multiarray._set_madvise_hugepage(True)
    try:
        small_pages()
        assert np_multiarray._set_madvise_hugepage(True) is False
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        small_pages()
        assert np_multiarray._set_madvise_hugepage(True) is True
    finally:
        np_multiarray._set_madvise_hugepage(before)
