"""Bad input: a clear error naming the problem, or a counted, reported skip."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from beam_jobs.cooccurrence.__main__ import run
from beam_jobs.cooccurrence.config import ConfigError
from beam_jobs.cooccurrence.io import InputError, OutputExistsError, read_triplets, read_vocab
from tests.cooccurrence import reference
from tests.cooccurrence.test_counting import as_dict, assert_same_counts
from tests.cooccurrence.test_pipeline import run_job

REPO = Path(__file__).resolve().parents[2]
GOOD = "the cat sat on the mat\nthe dog sat on the log\n"


def dead_letters(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((out / "dead_letter").glob("*.jsonl"))
            for line in p.read_text().splitlines()]


def test_bad_files_and_lines_are_skipped_counted_and_reported(tmp_path):
    long_line = "cat " * 300_000  # 1.2 MB, over the default --max-line-bytes of 1 MiB
    files = {
        "good.txt": GOOD,
        "empty.txt": b"",
        "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "latin1.txt": "the dog sat\n".encode() + "caf\xe9 the\n".encode("latin-1")
                      + b"the cat\n",
        "long.txt": f"the mat\n{long_line}\nthe log\n",
    }
    out = run_job(tmp_path, files, "--window", "2", "--min-count", "1")
    summary = json.loads((out / "summary.json").read_text())
    assert {k: summary[k] for k in ("files", "files_read", "empty_files", "binary_files",
                                    "lines_skipped_non_utf8", "lines_skipped_too_long",
                                    "dead_letter_records")} == {
        "files": 5, "files_read": 3, "empty_files": 1, "binary_files": 1,
        "lines_skipped_non_utf8": 1, "lines_skipped_too_long": 1, "dead_letter_records": 4}
    assert summary["lines"] == 2 + 3 + 3  # skipped lines are read lines too

    records = {Path(r["path"]).name: r for r in dead_letters(out)}
    assert set(records) == {"empty.txt", "binary.txt", "latin1.txt", "long.txt"}
    assert records["latin1.txt"]["offset"] == len("the dog sat\n")
    assert "not valid UTF-8" in records["latin1.txt"]["reason"]
    assert records["long.txt"]["offset"] == len("the mat\n")
    assert "longer than 1048576 bytes" in records["long.txt"]["reason"]
    assert "binary" in records["binary.txt"]["reason"]

    # What was kept is counted exactly as if the skipped lines were empty lines.
    kept_text = GOOD + "the dog sat\n\nthe cat\n" + "the mat\n\nthe log\n"
    vocab, expected = reference.count_text(kept_text, 1, 2)
    assert read_vocab(str(out / "vocab"))[0] == vocab
    matrix = read_triplets(str(out / "cooccurrence"), (len(vocab), len(vocab)))
    assert_same_counts(as_dict(matrix), expected, "harmonic")


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
    (["--ppmi-alpha", "0"], "--ppmi-alpha must be in"),
    (["--svd-power", "2"], "--svd-power must be in"),
    (["--token-pattern", "([a-z]+)"], "capturing groups"),
])
def test_invalid_flags_fail_before_running(tmp_path, flags, message):
    with pytest.raises(ConfigError, match=message):
        run(["--input", str(tmp_path / "*.txt"), "--output", str(tmp_path / "out"), *flags],
            save_main_session=False)


def test_input_matching_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="matches no files"):
        run(["--input", str(tmp_path / "nothing-*.txt"), "--output", str(tmp_path / "o")],
            save_main_session=False)


def test_existing_output_needs_overwrite(tmp_path):
    run_job(tmp_path, {"a.txt": GOOD}, "--min-count", "1")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        run_job(tmp_path, {"a.txt": GOOD}, "--min-count", "1")
    out = run_job(tmp_path, {"a.txt": GOOD}, "--min-count", "2", "--overwrite")
    assert read_vocab(str(out / "vocab"))[0] == ["the", "on", "sat"]
    assert len(list((out / "cooccurrence").glob("*"))) == 1


def test_cli_reports_window_below_one_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "beam_jobs.cooccurrence", "--input", str(tmp_path / "*.txt"),
         "--output", str(tmp_path / "out"), "--window", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "--window must be >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
