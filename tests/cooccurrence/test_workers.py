"""Forked helpers of --processes: what they return, and a failure surfacing in the DoFn."""
from __future__ import annotations

import numpy as np
import pytest

from beam_jobs.cooccurrence.counting import Tokenizer
from beam_jobs.cooccurrence.spill import read_chunks
from beam_jobs.cooccurrence.workers import TokenizeWorkers, WorkerError


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
        with pytest.raises(WorkerError, match="(?s)a tokenizing process failed.*Traceback"):
            workers.finish()
    finally:
        workers.close()
