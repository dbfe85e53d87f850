"""Whole-job runs (in-process FnApiRunner) on small texts, read back from Parquet."""
from __future__ import annotations

from pathlib import Path

import os
import signal

import numpy as np
import pyarrow.parquet as pq
import pytest

from beam_jobs.cooccurrence import workers
from beam_jobs.cooccurrence.__main__ import main, run
from mlbatch.artifacts.cooccurrence import load_cooccurrence
from mlbatch.artifacts.manifest import pending_state
from tests.cooccurrence import reference
from tests.cooccurrence.test_counting import as_dict, assert_same_counts

FILES = {
    "a.txt": "The cat sat on the mat.\nThe dog sat on the log!\n\nthe\n",
    "b.txt": "a cat and a dog\n\n\ndog\ncat, dog; cat and the mat",  # no final newline
    "c.txt": "It's the cat's mat.\n" * 3,
}


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (root / name).write_bytes(data)
    return root


def run_job(tmp_path: Path, files: dict, *flags: str, name: str = "out") -> Path:
    corpus = write_files(tmp_path / "corpus", files)
    out = tmp_path / name
    run(["--input", str(corpus / "*.txt"), "--output", str(out), *flags],
        save_main_session=False)
    return out


def reference_for(files: dict, min_count: int, window: int, weighting: str, direction: str):
    lines = []
    for name in sorted(files):
        content = files[name]
        lines += reference.tokenize_lines(content if isinstance(content, str)
                                          else content.decode("utf-8"))
    vocab = reference.vocabulary(lines, min_count)
    return vocab, reference.cooccurrences(lines, vocab, window, weighting, direction), lines


@pytest.mark.parametrize("weighting,direction,processes", [("harmonic", "symmetric", "1"),
                                                           ("uniform", "left", "1"),
                                                           ("harmonic", "symmetric", "2")])
def test_matrix_vocab_and_summary_match_reference(tmp_path, weighting, direction, processes):
    # Tiny shards, byte ranges and batches so that every split path is exercised; with
    # --processes 2, the helper processes' tokenizers and counters too.
    out = run_job(tmp_path, FILES, "--window", "3", "--min-count", "2", "--weighting",
                  weighting, "--direction", direction, "--rows-per-shard", "3",
                  "--split-bytes", "17", "--batch-bytes", "8", "--shard-nnz", "4",
                  "--processes", processes)
    assert not (out / "_spill").exists()  # the token-id spills are gone once counted
    vocab, expected, lines = reference_for(FILES, 2, 3, weighting, direction)
    art = load_cooccurrence(out)
    tokens, counts = art.vocabulary().tokens, art.vocabulary().counts
    assert tokens == vocab
    all_tokens = [t for line in lines for t in line]
    assert counts.tolist() == [all_tokens.count(t) for t in vocab]
    assert_same_counts(as_dict(art.counts()), expected, weighting)

    summary = art.summary()
    kept = sum(1 for t in all_tokens if t in vocab)
    assert summary["files"] == 3 and summary["lines"] == 4 + 5 + 3
    assert (summary["tokens"], summary["kept_tokens"]) == (len(all_tokens), kept)
    assert summary["vocab_size"] == len(vocab) and summary["nnz"] == len(expected)
    assert summary["total_mass"] == pytest.approx(sum(expected.values()), rel=1e-12)
    assert summary["dead_letter_records"] == 0



@pytest.mark.parametrize("role,cls,step", [
    ("tokenizing", "TokenizeWorkers", "TokenizeText/TokenizeBatches/ParDo(TokenizeFn)"),
    ("counting", "CountWorkers", "CountCooccurrences/CountPairs")])
def test_a_helper_killed_mid_job_fails_the_job_at_once_uncommitted(tmp_path, monkeypatch,
                                                                    caplog, role, cls, step):
    # The first batch (spill) sent to the helpers first SIGKILLs helper 1: the job must
    # not wait for it (before the fix a dead pool worker's task was waited on forever).
    killed = []
    submit = getattr(workers, cls).submit

    def kill_then_submit(self, *args):
        if not killed:
            killed.append(self.helpers[1].process.pid)
            os.kill(killed[0], signal.SIGKILL)
        submit(self, *args)

    monkeypatch.setattr(getattr(workers, cls), "submit", kill_then_submit)
    corpus = write_files(tmp_path / "corpus", FILES)
    out = tmp_path / "out"
    assert main(["--input", str(corpus / "*.txt"), "--output", str(out), "--min-count", "1",
                 "--processes", "2"]) == 1
    reason = f"{role} helper 1 (pid {killed[0]}) died before replying: signal SIGKILL"
    assert reason in caplog.text
    assert pending_state(str(out))["failure"] == (
        f"WorkerError: {reason} [while running '{step}']")
    assert not (out / "artifact.json").exists() and not (out / "_spill").exists()


def test_shards_are_sorted_and_cover_their_rows(tmp_path):
    out = run_job(tmp_path, FILES, "--window", "2", "--min-count", "1",
                  "--rows-per-shard", "4")
    vocab_size = load_cooccurrence(out).vocab_size
    shards = sorted((out / "cooccurrence").glob("part-*.parquet"))
    n = -(-vocab_size // 4)
    assert [p.name for p in shards] == [f"part-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    for i, path in enumerate(shards):
        table = pq.read_table(path)
        assert table.schema.field("value").type == "double"
        rows, cols = table["row"].to_numpy(), table["col"].to_numpy()
        assert np.all((rows >= 4 * i) & (rows < 4 * (i + 1)))
        order = np.lexsort((cols, rows))
        assert np.array_equal(order, np.arange(len(rows)))  # sorted by (row, col)
        assert len(set(zip(rows.tolist(), cols.tolist()))) == len(rows)  # no duplicates


def test_vocab_ids_by_descending_count_then_token(tmp_path):
    out = run_job(tmp_path, {"v.txt": "b a c b a d c b\ne\n"}, "--min-count", "1")
    table = pq.read_table(next((out / "vocab").glob("*.parquet")))
    assert table.to_pydict() == {"id": [0, 1, 2, 3, 4], "token": ["b", "a", "c", "d", "e"],
                                 "count": [3, 2, 2, 1, 1]}


def test_ppmi_and_vectors(tmp_path):
    from gensim.models import KeyedVectors
    out = run_job(tmp_path, FILES, "--window", "2", "--min-count", "1", "--ppmi",
                  "--ppmi-shift", "1.5", "--svd-dim", "4", "--rows-per-shard", "5")
    vocab, expected, _ = reference_for(FILES, 1, 2, "harmonic", "symmetric")
    v = len(vocab)
    counts = np.zeros((v, v))
    for (r, c), value in expected.items():
        counts[r, c] = value
    context = counts.sum(axis=0) ** 0.75
    with np.errstate(divide="ignore"):
        pmi = (np.log(counts) - np.log(counts.sum(axis=1, keepdims=True))
               - np.log(context / context.sum()) - np.log(1.5))
    dense = np.where(counts > 0, np.maximum(pmi, 0), 0)
    art = load_cooccurrence(out)
    got = art.ppmi().toarray()
    np.testing.assert_allclose(got, dense, rtol=1e-12, atol=1e-12)

    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"), binary=False)
    assert kv.index_to_key == vocab and kv.vector_size == 4
    np.testing.assert_allclose(np.linalg.norm(kv.vectors, axis=1), 1.0, atol=1e-5)
    tokens, parquet_vectors = art.vectors()
    assert tokens == vocab and parquet_vectors.dtype == np.float32
    np.testing.assert_allclose(kv.vectors, parquet_vectors, rtol=1e-5, atol=1e-6)
    summary = art.summary()
    assert summary["ppmi"]["nnz"] == np.count_nonzero(dense)
    assert summary["svd"]["dim"] == 4 and summary["svd"]["zero_rows"] == 0
