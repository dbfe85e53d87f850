"""Bad input: a clear error naming the problem, or a counted dead-letter record.

The corpus is gensim's ``lee_background.cor`` and a hand-corrupted copy of it (a line
that is not UTF-8 and a 2 MB line spliced in), beside gensim's own binary
``high_precision.kv.bin`` and an empty file.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gensim.test.utils import datapath

from beam_jobs.cooccurrence.__main__ import main, run
from beam_jobs.cooccurrence.config import ConfigError
from beam_jobs.common.inputs import InputError
from mlbatch.artifacts import read_manifest, verify
from mlbatch.artifacts.cooccurrence import load_cooccurrence
from tests.cooccurrence import reference
from tests.cooccurrence.test_counting import as_dict, assert_same_counts
from tests.cooccurrence.test_pipeline import run_job

REPO = Path(__file__).resolve().parents[2]
GOOD = "the cat sat on the mat\nthe dog sat on the log\n"
LEE = Path(datapath("lee_background.cor"))
BINARY = Path(datapath("high_precision.kv.bin"))
BAD_LINE, LONG_LINE_AT = 10, 20  # 0-based lines of the corrupted copy


def corrupted_lee() -> tuple[bytes, int, int, bytes]:
    """lee with line 10 re-encoded as Latin-1 (an 'é' added) and a 2 MB line of its own
    text inserted before line 20: (bytes, offset of the bad line, offset of the long
    line, the kept text with both as empty lines)."""
    lines = LEE.read_bytes().split(b"\n")
    bad = ("café " + lines[BAD_LINE].decode()).encode("latin-1")
    long_line = b" ".join(lines[:40])
    long_line = (long_line + b" ") * (2_000_000 // len(long_line) + 1)
    corrupted = lines[:BAD_LINE] + [bad] + lines[BAD_LINE + 1:LONG_LINE_AT] + [long_line] \
        + lines[LONG_LINE_AT:]

    def offset(n):
        return sum(len(line) + 1 for line in corrupted[:n])

    kept = lines[:BAD_LINE] + [b""] + lines[BAD_LINE + 1:LONG_LINE_AT] + [b""] \
        + lines[LONG_LINE_AT:]
    return b"\n".join(corrupted), offset(BAD_LINE), offset(LONG_LINE_AT), b"\n".join(kept)


@pytest.fixture(scope="module")
def corrupted_run(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    data, bad_at, long_at, kept = corrupted_lee()
    shutil.copy(LEE, corpus / "lee.cor")
    (corpus / "lee_corrupted.cor").write_bytes(data)
    shutil.copy(BINARY, corpus / "high_precision.kv.bin")
    (corpus / "empty.cor").write_bytes(b"")
    out = corpus.parent / "out"
    manifest = run(["--input", str(corpus / "*"), "--output", str(out), "--window", "5",
                    "--min-count", "5", "--max-line-bytes", str(1 << 20)],
                   save_main_session=False)
    return corpus, out, manifest, {"bad_at": bad_at, "long_at": long_at, "kept": kept}


def test_corrupted_corpus_counts_reconcile_and_dead_letters_name_file_and_offset(
        corrupted_run):
    _, out, _, facts = corrupted_run
    art = load_cooccurrence(out)
    summary = art.summary()
    assert {k: summary[k] for k in ("files", "files_read", "empty_files", "binary_files",
                                    "lines_skipped_non_utf8", "lines_skipped_too_long",
                                    "dead_letter_records")} == {
        "files": 4, "files_read": 2, "empty_files": 1, "binary_files": 1,
        "lines_skipped_non_utf8": 1, "lines_skipped_too_long": 1, "dead_letter_records": 4}
    assert summary["lines"] == 300 + 301  # skipped lines are read lines too

    dead = sorted(art.dead_letters().to_pylist(), key=lambda r: (r["source"], r["offset"]))
    assert [(Path(r["source"]).name, r["offset"]) for r in dead] == [
        ("empty.cor", 0), ("high_precision.kv.bin", 0),
        ("lee_corrupted.cor", facts["bad_at"]), ("lee_corrupted.cor", facts["long_at"])]
    assert {r["job"] for r in dead} == {"beam_jobs.cooccurrence"}
    empty, binary, bad, long_line = (r["reason"] for r in dead)
    assert empty == "empty file" and binary.startswith("binary file: NUL byte")
    assert bad.startswith("not valid UTF-8: invalid continuation byte at byte 3")
    assert dead[2]["raw"].startswith("caf\\xe9 ")
    assert long_line == "line longer than --max-line-bytes 1048576 (first 1024 bytes kept)"
    assert len(dead[3]["raw"]) == 1024

    # What was kept is counted exactly as if the skipped lines were empty lines.
    lines = (reference.tokenize_lines(facts["kept"].decode())
             + reference.tokenize_lines(LEE.read_text(encoding="utf-8")))
    vocab = reference.vocabulary(lines, 5)
    assert art.vocabulary().tokens == vocab
    assert_same_counts(as_dict(art.counts()),
                       reference.cooccurrences(lines, vocab, 5, "harmonic", "symmetric"),
                       "harmonic")


def test_corrupted_corpus_output_is_a_committed_artifact_of_its_inputs(corrupted_run):
    corpus, out, manifest, _ = corrupted_run
    m = read_manifest(out, "cooccurrence")
    assert m.digest == manifest.digest and verify(m) == []
    assert not (out / "_PENDING.json").exists()
    files = sorted(corpus.iterdir())
    assert [(e["role"], e["uri"], e["size"], e["sha256"]) for e in m.inputs] == [
        ("corpus", str(p), p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in files]
    summary = load_cooccurrence(out).summary()
    assert m.metrics == {k: summary[k] for k in m.metrics} and m.metrics["files"] == 4
    assert m.config["min_count"] == 5 and m.config["input"] == str(corpus / "*")
    assert all(m.body["checks"].values()) and len(m.body["checks"]) == 7
    assert m.rows == {"vocab": summary["vocab_size"], "cooccurrence": summary["nnz"],
                      "dead_letter": 4}
    assert sorted(f["path"].split("/")[0] for f in m.files) == [
        "cooccurrence", "dead_letter", "summary.json", "vocab"]


def test_failed_run_stays_uncommitted_with_its_reason_and_is_cleared_by_the_next(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Exception, match=r"vocabulary is empty after --min-count 100000"):
        run(["--input", str(LEE), "--output", str(out), "--min-count", "100000"],
            save_main_session=False)
    with pytest.raises(Exception, match=r"failed: EmptyVocabularyError: vocabulary is "
                                        r"empty after --min-count 100000: \d+ tokens"):
        load_cooccurrence(out)
    # The uncommitted leftovers of a failed run need no --overwrite ...
    run(["--input", str(LEE), "--output", str(out), "--min-count", "50"],
        save_main_session=False)
    assert load_cooccurrence(out).vocab_size > 0
    # ... a committed artifact does.
    assert main(["--input", str(LEE), "--output", str(out)]) == 2
    run(["--input", str(LEE), "--output", str(out), "--min-count", "500", "--overwrite"],
        save_main_session=False)
    art = load_cooccurrence(out)
    assert art.config["min_count"] == 500 and art.vocabulary().tokens[:3] == ["the", "to", "of"]


def test_empty_vocabulary_after_min_count_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match=r"vocabulary is empty after --min-count 50: 12 "
                                        r"tokens \(7 distinct\).*'the', occurs 4 times"):
        run_job(tmp_path, {"a.txt": GOOD}, "--min-count", "50")


def test_only_empty_files_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="no token was read from --input"):
        run_job(tmp_path, {"a.txt": b"", "b.txt": b"\n\n"}, "--min-count", "1")


@pytest.mark.parametrize("flags,message", [
    (["--window", "0"], "--window must be >= 1, got 0"),
    (["--min-count", "0"], "--min-count must be >= 1"),
    (["--processes", "0"], "--processes must be >= 1, got 0"),
    (["--ppmi-alpha", "0"], "--ppmi-alpha must be in"),
    (["--svd-power", "2"], "--svd-power must be in"),
    (["--token-pattern", "([a-z]+)"], "capturing groups"),
    (["--token-pattern", "(?i)[a-z]+"], "cannot be used inside"),
])
def test_invalid_flags_fail_before_running(tmp_path, flags, message):
    with pytest.raises(ConfigError, match=message):
        run(["--input", str(tmp_path / "*.txt"), "--output", str(tmp_path / "out"), *flags],
            save_main_session=False)


def test_input_matching_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="matches no files"):
        run(["--input", str(tmp_path / "nothing-*.txt"), "--output", str(tmp_path / "o")],
            save_main_session=False)
    assert main(["--input", str(tmp_path / "nothing-*.txt"), "--output",
                 str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_cli_reports_window_below_one_with_exit_2_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "beam_jobs.cooccurrence", "--input", str(tmp_path / "*.txt"),
         "--output", str(tmp_path / "out"), "--window", "0"],
        check=False, cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 2
    assert "--window must be >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
