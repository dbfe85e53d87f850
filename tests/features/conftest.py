"""Fixtures shared by the feature job's test modules (the flights slice and its feature
output are in tests/conftest.py)."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import built_once, run_feature_job
from tests.features.test_bad_input import BAD_LINES, GOOD, TRUNCATED


@pytest.fixture(scope="session")
def broken_input(flights_slice, tmp_path_factory) -> Path:
    """300 good flights, and a second file of BAD_LINES, a good line and a truncated last
    line (8 dead letters of 309 records: 2.6 %), an empty and a header-only file."""
    return built_once(tmp_path_factory, "broken", lambda d: _write_broken(flights_slice, d))


def _write_broken(flights_slice: Path, d: Path) -> Path:
    lines = (flights_slice / "flights.csv").read_bytes().splitlines(keepends=True)
    header, good = lines[0], lines[1:301]
    (d / "flights.csv").write_bytes(header + b"".join(good))
    (d / "flights_bad.csv").write_bytes(
        header + b"".join(line + b"\n" for line in BAD_LINES) + GOOD + b"\n" + TRUNCATED)
    (d / "flights_empty.csv").write_bytes(b"")
    (d / "flights_header_only.csv").write_bytes(header)
    for t in ("weather", "planes"):
        shutil.copy(flights_slice / f"{t}.csv", d / f"{t}.csv")
    return d


@dataclasses.dataclass(frozen=True)
class DeadLetterRuns:
    first: subprocess.CompletedProcess  # at the default limit (1 %): fails, uncommitted
    failed: Path  # a copy of the output as the first run left it
    rerun: subprocess.CompletedProcess  # the same command, --max-dead-letter-share 0.05
    out: Path  # the output after the rerun (no --overwrite given)


@pytest.fixture(scope="session")
def dead_letter_runs(broken_input, tmp_path_factory) -> DeadLetterRuns:
    """The feature job twice into one output on ``broken_input``, as a user would run it:
    first over the dead-letter limit, then with the limit raised. One pair of runs serves
    the limit tests (test_integrity) and the dead-letter accounting tests (test_bad_input)."""
    return built_once(tmp_path_factory, "dead_letter_runs",
                      lambda root: _dead_letter_runs(broken_input, root))


def _dead_letter_runs(broken_input: Path, root: Path) -> DeadLetterRuns:
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        # As a user's shell would be: tf.Transform imported in the test process sets
        # TF_CPP_MIN_LOG_LEVEL for itself, and the job respects a value it inherits.
        mp.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
        first = run_feature_job(broken_input, out)
        failed = Path(shutil.copytree(out, root / "failed")) if out.exists() else root / "failed"
        rerun = run_feature_job(broken_input, out, "--max-dead-letter-share", "0.05")
    return DeadLetterRuns(first=first, failed=failed, rerun=rerun, out=out)
