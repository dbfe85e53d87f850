"""Broken raw files: the job finishes where it can, every record is accounted for."""
import json

import pyarrow.parquet as pq
import pytest

from tests.conftest import feature_job_main
from tests.mlbatch.test_schema import write_schema

GOOD = b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z"
BAD_LINES = {
    b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15": "expected 19 fields",
    GOOD + b",extra": "expected 19 fields, got 20",
    b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,far,5,15,2013-01-01T10:00:00Z":
        "distance: not a finite number: 'far'",
    b"2013,1,1,517,515,2,830,819,11,UA,1545,N1\xff\xfe,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z":
        "invalid UTF-8",
    b",".join([b"NA"] * 19): "year: missing required value",
    b",".join([b""] * 19): "year: missing required value",
    b"2013,13,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z":
        "month: '13' above maximum 12",
}
TRUNCATED = b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EW"  # last line, no newline


def test_broken_files_are_dead_lettered_and_counts_reconcile(broken_input, dead_letter_runs):
    """broken_input (tests/features/conftest.py) through the job, dead-letter limit 5 %."""
    out, proc = dead_letter_runs.out, dead_letter_runs.rerun
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    s = summary["stages"]
    n_bad = len(BAD_LINES) + 1
    assert s["read"] == 300 + len(BAD_LINES) + 2
    assert s["dead_letter"] == n_bad
    assert summary["reconciled"] and s["valid"] == s["train"] + s["eval"] + s["excluded"]
    files = dict(map(tuple, summary["tables"]["flights"]["files"]))
    assert files[str(broken_input / "flights_empty.csv")] == 0
    assert files[str(broken_input / "flights_header_only.csv")] == 0
    dead = pq.read_table(sorted((out / "dead_letter").glob("*.parquet"))).to_pylist()
    assert len(dead) == n_bad
    assert all(d["source"].endswith("flights_bad.csv") and d["table"] == "flights" for d in dead)
    reasons = {d["line"]: d["reason"] for d in dead}
    for i, expected in enumerate(BAD_LINES.values()):
        assert expected in reasons[i + 2], (i, reasons[i + 2])
    assert "expected 19 fields, got 13" == reasons[len(BAD_LINES) + 3]  # the truncated line
    raws = {d["line"]: d["raw"] for d in dead}
    assert raws[5].startswith("2013,1,1,517") and "\\xff" in raws[5]  # raw kept, escaped


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["features"]["vocabularies"].append({"column": "no_such_column"}),
     "unknown column 'no_such_column'"),
    (lambda r: r["features"]["crosses"].append(
        {"name": "ghost", "columns": ["origin", "ghost_col"], "hash_buckets": 16}),
     "cross 'ghost' uses missing column 'ghost_col'"),
])
def test_config_errors_stop_early_with_a_clear_message(flights_slice, tmp_path, mutate, message,
                                                       capsys):
    code, stderr = feature_job_main(capsys, flights_slice, tmp_path / "out",
                                    schema=write_schema(tmp_path, mutate))
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_missing_input_is_named(tmp_path, capsys):
    code, stderr = feature_job_main(capsys, tmp_path / "does_not_exist", tmp_path / "out")
    assert code == 2
    assert "table 'flights': no file matches" in stderr and "Traceback" not in stderr


def test_refuses_to_mix_with_an_earlier_run(flights_features, flights_slice, capsys):
    code, stderr = feature_job_main(capsys, flights_slice, flights_features)
    assert code == 2 and "pass --overwrite" in stderr
