"""What users (and attackers) bring: tampered, truncated, extended, linked and half-written
artifacts, a second writer, a dead writer's lock, a killed runner, paths out of the run
directory, remote run directories, an unreachable Ray, unwritable outputs, pickles and
HTML in data. Each case asserts its exact outcome: the exit status, the message naming
the file, holder or field, and that nothing was committed or left running."""
from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlbatch.artifacts import lock
from mlbatch.artifacts.base import (OutputLockedError, OutputUnwritableError, claim_output,
                                    mark_failed)
from mlbatch.artifacts.features import FeatureContractError, load_feature_set
from mlbatch.artifacts.manifest import IntegrityError, read_manifest
from ray_jobs.common.synthetic import write_synthetic_features

REPO = Path(__file__).resolve().parents[2]
SHARD = "train/part-00000-of-00002.parquet"
HOST = socket.gethostname()


@pytest.fixture()
def features(tmp_path) -> Path:
    """A fresh committed feature artifact (synthetic, 2 shards per split)."""
    return write_synthetic_features(tmp_path / "features", n_train=400, n_eval=100, seed=3)


def _recorded(root: Path, path: str) -> dict:
    doc = json.loads((root / "artifact.json").read_text())
    return next(f for f in doc["outputs"]["files"] if f["path"] == path)


def _flip_labels(shard: Path) -> None:
    table = pq.read_table(shard)
    flipped = pa.array(1.0 - table["label"].to_numpy(), pa.float32())
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", flipped),
                   shard)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: nothing may reap it in a container)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids: list[int], within_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and any(map(_alive, pids)):
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


# --- read side: the files a reader opens are the files that were committed -------------------
def test_flipped_labels_in_a_committed_split_are_refused_by_the_trainer(features, tmp_path,
                                                                        capsys):
    from ray_jobs.xgboost.__main__ import main
    _flip_labels(features / SHARD)
    out = tmp_path / "model"
    rc = main(["--features", str(features), "--output", str(out), "--num-boost-round", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{features}: file {SHARD}" in err and "changed after the commit" in err
    assert not (out / "artifact.json").exists()


def test_truncated_parquet_shard_is_refused_naming_its_sizes(features):
    shard = features / SHARD
    full = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[: full // 2])
    with pytest.raises(FeatureContractError) as e:
        load_feature_set(features)
    assert str(e.value) == (f"{features}: file {SHARD} is {full // 2} bytes, artifact.json "
                            f"records {full}: it changed after the commit")


def test_a_recorded_output_that_is_missing_is_refused(features):
    (features / "eval" / "part-00001-of-00002.parquet").unlink()
    with pytest.raises(IntegrityError, match="file eval/part-00001-of-00002.parquet recorded "
                                             "in artifact.json is missing"):
        read_manifest(features, "features")


def test_an_extra_shard_added_after_the_commit_is_refused(features):
    extra = features / "train" / "part-00002-of-00002.parquet"
    extra.write_bytes((features / SHARD).read_bytes())
    with pytest.raises(FeatureContractError) as e:
        load_feature_set(features)
    assert str(e.value) == (
        f"{features}: file train/part-00002-of-00002.parquet is not part of the committed "
        "artifact (1 unrecorded file(s)); it was added after the commit: rebuild the "
        "artifact or remove it")


@pytest.mark.parametrize("field, value, message", [
    ("sha256", "not-a-digest", "sha256 'not-a-digest' is not 64 hex digits"),
    ("sha256", "AB" * 32, "is not 64 hex digits"),
    ("path", "../outside.parquet", "path '../outside.parquet' is not inside the artifact"),
    ("path", "/etc/passwd", "path '/etc/passwd' is not inside the artifact"),
    ("size", "12", "size '12' is not an integer"),
])
def test_a_malformed_file_entry_in_the_manifest_is_refused_naming_the_field(
        features, field, value, message):
    doc = json.loads((features / "artifact.json").read_text())
    doc["outputs"]["files"][0][field] = value
    (features / "artifact.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError) as e:
        read_manifest(features)
    assert "field 'outputs.files[0]'" in str(e.value) and message in str(e.value)


def test_a_malformed_or_foreign_digest_field_is_refused(features):
    doc = json.loads((features / "artifact.json").read_text())
    good = doc["digest"]
    doc["digest"] = "md5:1234"
    (features / "artifact.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="field 'digest' 'md5:1234' is not 'sha256:'"):
        read_manifest(features)
    doc["digest"] = "sha256:" + "0" * 64
    (features / "artifact.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="field 'digest' does not match the recorded files"):
        read_manifest(features)
    doc["digest"] = good
    (features / "artifact.json").write_text(json.dumps(doc))
    assert read_manifest(features).digest == good


def test_a_shard_replaced_by_a_symlink_out_of_the_artifact_is_refused(features, tmp_path):
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes((features / SHARD).read_bytes())  # same bytes: only the link is wrong
    (features / SHARD).unlink()
    (features / SHARD).symlink_to(outside)
    with pytest.raises(IntegrityError) as e:
        read_manifest(features, "features")
    assert str(e.value) == (f"{features}: file {SHARD} is a link to {outside}, outside the "
                            "artifact")


def test_a_pending_artifact_given_to_a_trainer_exits_2_naming_the_run(tmp_path, capsys):
    from ray_jobs.xgboost.__main__ import main
    pending = tmp_path / "features"
    claim_output(str(pending), job="beam_jobs.features")
    try:
        rc = main(["--features", str(pending), "--output", str(tmp_path / "m")])
    finally:
        lock.release(str(pending))
    assert rc == 2
    assert (f"{pending} is uncommitted: a beam_jobs.features run started at"
            in capsys.readouterr().err)


def test_the_pipeline_cache_reruns_a_step_whose_output_changed_on_disk(features):
    from pipelines import cache
    parts = {"job": "j", "code": "c", "params": {}, "inputs": {}, "raw": {}}
    key = cache.StepKey(key="sha256:" + "1" * 64, parts=parts)
    cache.store(str(features), key)
    assert cache.is_hit(str(features), key)
    _flip_labels(features / SHARD)
    assert not cache.is_hit(str(features), key)
    assert cache.why_miss(str(features), key).startswith(
        f"output changed since its commit (file {SHARD} ")


# --- one writer per output ------------------------------------------------------------------
_HOLDER = """
import sys
from mlbatch.artifacts.base import claim_output
claim_output(sys.argv[1], job="holder-job")
print("held", flush=True)
sys.stdin.read()
"""


def _holder(uri: str) -> subprocess.Popen:
    """Another process that claimed ``uri`` and keeps it until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, uri], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_trainer_into_a_claimed_output_exits_2_and_leaves_its_files(
        synthetic_features, tmp_path, capsys):
    from ray_jobs.xgboost.__main__ import main
    out = tmp_path / "model"
    holder = _holder(str(out))
    try:
        (out / "model.json").write_text("being written")
        rc = main(["--features", str(synthetic_features), "--output", str(out),
                   "--overwrite"])
    finally:
        holder.stdin.close()
        holder.wait()
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{out} is locked by holder-job (pid {holder.pid} on {HOST}, since" in err
    assert (out / "model.json").read_text() == "being written"
    assert not (out / "artifact.json").exists()


def test_a_lock_left_by_a_dead_writer_is_taken_over(tmp_path, caplog):
    out = tmp_path / "out"
    holder = _holder(str(out))
    holder.kill()  # SIGKILL: it never releases
    holder.wait()
    assert lock.holder(str(out))["pid"] == holder.pid
    with caplog.at_level("WARNING", logger="mlbatch.artifacts.lock"):
        claim_output(str(out), job="next-job")
    try:
        assert lock.holder(str(out))["pid"] == os.getpid()
        assert lock.holder(str(out))["job"] == "next-job"
        assert f"holder-job (pid {holder.pid} on {HOST}" in caplog.text
    finally:
        mark_failed(str(out), "next-job", "test over")
    assert not (out / lock.LOCK).exists()


def test_gs_output_lock_refuses_a_live_holder_and_takes_over_dead_or_expired_ones(
        gcs_emulator, caplog):
    uri = gcs_emulator.uri("hostile", "locked")
    holder = _holder(uri)
    try:
        with pytest.raises(OutputLockedError) as e:
            claim_output(uri, job="second-job")
        assert f"{uri} is locked by holder-job (pid {holder.pid} on {HOST}" in str(e.value)
    finally:
        holder.kill()
        holder.wait()
    with caplog.at_level("WARNING", logger="mlbatch.artifacts.lock"):
        claim_output(uri, job="after-dead-job")
    assert lock.holder(uri)["pid"] == os.getpid() and "recovering a stale lock" in caplog.text
    mark_failed(uri, "after-dead-job", "test over")
    # another host's lock: kept within its lease, taken over once the lease ran out
    from mlbatch import storage
    for lease, taken in ((3600.0, False), (0.0, True)):
        storage.write_text(storage.join(uri, lock.LOCK), json.dumps(
            {"pid": 1, "host": "another-host", "job": "far-job", "lease_s": lease}))
        time.sleep(0.01)
        if taken:
            claim_output(uri, job="after-lease")
            assert lock.holder(uri)["job"] == "after-lease"
            mark_failed(uri, "after-lease", "test over")
        else:
            with pytest.raises(OutputLockedError, match="far-job .pid 1 on another-host"):
                claim_output(uri, job="too-early")


def test_an_unreachable_gs_output_is_refused_within_the_timeout_naming_the_lock(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLBATCH_GCS_TIMEOUT_S", "1")
    with pytest.raises(OutputUnwritableError) as e:
        claim_output("gs://no-bucket/out", job="j")
    assert str(e.value).startswith("--output gs://no-bucket/out cannot be written: cannot take "
                                   "the lock gs://no-bucket/out/.mlbatch.lock: RetryError: "
                                   "Timeout of 1.0s exceeded")


@pytest.mark.parametrize("where", ["under a file", "/sys"])
def test_an_unwritable_output_exits_2_naming_the_path(tmp_path, capsys, synthetic_features,
                                                      where):
    from ray_jobs.xgboost.__main__ import main
    if where == "under a file":
        (tmp_path / "a_file").write_text("x")
        out, cause = tmp_path / "a_file" / "model", "Not a directory"
    else:
        out, cause = Path("/sys/mlbatch-hostile-model"), "Operation not permitted"
    rc = main(["--features", str(synthetic_features), "--output", str(out)])
    assert rc == 2
    assert f"--output {out} cannot be written: {cause}" in capsys.readouterr().err
    with pytest.raises(OutputUnwritableError):
        claim_output(str(out), job="j")


# --- the pipeline runner ----------------------------------------------------------------------
SPEC = """pipeline: hostile
steps:
  features:
    job: beam_jobs.features
    args: {schema: schemas/flights.yaml, input: data}
    raw: [schema, input]
  train:
    job: ray_jobs.xgboost
    args: {features: "${features}"}
"""


def _pipelines(capsys, *argv: str) -> tuple[int, str]:
    from pipelines.__main__ import main
    rc = main(list(argv))
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("ref", ["${features}/../..", "${features}/train/../../../etc",
                                 "${features}/./train"])
def test_a_reference_leading_out_of_the_run_dir_is_refused_at_load(tmp_path, capsys, ref):
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.replace('"${features}"', f'"{ref}"'))
    rc, err = _pipelines(capsys, "run", str(spec), "--output", str(tmp_path / "run"))
    assert rc == 2
    assert (f"step 'train': field 'args.features': reference {ref!r} leads out of the "
            "step's output") in err
    assert not (tmp_path / "run").exists()


def test_a_gs_run_directory_is_refused_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    rc, err = _pipelines(capsys, "run", str(spec), "--output", "gs://bucket/run")
    assert rc == 2
    assert "--output gs://bucket/run: the run directory must be a local path" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_an_unwritable_run_directory_exits_2_naming_it(tmp_path, capsys):
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC)
    rc, err = _pipelines(capsys, "run", str(spec), "--output", str(spec / "run"))
    assert rc == 2
    assert f"--output {spec / 'run'} cannot be written: Not a directory" in err


def test_ray_cluster_submit_refuses_a_gs_run_dir_without_a_local_store(tmp_path):
    from pipelines.ray_cluster import ClusterError, submit_steps
    from pipelines.spec import parse_pipeline
    with pytest.raises(ClusterError, match="run directory gs://b/run is not local: the lineage "
                                           "store lineage.sqlite cannot be written there"):
        submit_steps(parse_pipeline(SPEC), [], "gs://b/run", "http://127.0.0.1:9", env={})


def test_a_second_runner_on_the_same_run_dir_exits_2_naming_the_first(tmp_path, capsys):
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC)
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from mlbatch.artifacts import lock; "
         "lock.acquire(sys.argv[1], 'pipelines run hostile'); print('held', flush=True); "
         "sys.stdin.read()", str(run)], cwd=REPO, text=True, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, err = _pipelines(capsys, "run", str(spec), "--output", str(run))
    finally:
        holder.stdin.close()
        holder.wait()
    assert rc == 2
    assert f"{run} is locked by pipelines run hostile (pid {holder.pid} on {HOST}" in err
    assert sorted(p.name for p in run.iterdir()) == [lock.LOCK]  # no run.json, no logs


# The runner with one step whose job forks a child and both sleep (no Ray, no Beam).
_RUNNER = """
import os, sys
import pipelines.runner as runner
from pipelines.__main__ import main
STEP = '''
import os, sys, time
child = os.fork()
if child == 0:
    time.sleep(600)
    os._exit(0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child}")
time.sleep(600)
'''
runner.Runner.command = lambda self, step: [sys.executable, "-c", STEP, sys.argv[3]]
sys.exit(main(["run", sys.argv[1], "--output", sys.argv[2]]))
"""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_runner_takes_its_steps_forked_processes_down(tmp_path, how):
    spec = tmp_path / "p.yaml"
    spec.write_text("pipeline: sleepy\nsteps:\n  nap:\n    job: pipelines.report\n"
                    "    args: {run: x}\n")
    pids_file, run = tmp_path / "pids", tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, str(spec), str(run), str(pids_file)],
                            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (pids_file.exists() and pids_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [int(p) for p in pids_file.read_text().split()]
        assert len(pids) == 2 and all(map(_alive, pids))
        os.kill(proc.pid, how)
        rc = proc.wait(timeout=60)
        assert _wait_gone(pids) == []
    finally:
        for pid in [int(p) for p in (pids_file.read_text().split() if pids_file.exists()
                                     else [])]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    if how == signal.SIGTERM:
        assert rc == 130 and "interrupted" in proc.stderr.read()
        doc = json.loads((run / "run.json").read_text())
        assert doc["status"] == "failed" and doc["steps"][0]["error"] == "interrupted"
    else:
        assert rc == -signal.SIGKILL


# --- Ray, the monitor's intermediate file, the report, Beam's worker ports ---------------------
def test_an_unreachable_ray_address_exits_2_naming_it(synthetic_features, tmp_path, capsys,
                                                      monkeypatch):
    import ray

    from ray_jobs.xgboost.__main__ import main
    if ray.is_initialized():  # an earlier test's connection: the job would reuse it
        ray.shutdown()
    monkeypatch.setenv("MLBATCH_RAY_CONNECT_TIMEOUT_S", "1")
    out = tmp_path / "model"
    rc = main(["--features", str(synthetic_features), "--output", str(out),
               "--address", "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--address 127.0.0.1:9: no Ray answers there (Connection refused; tried for 1 s" in err
    assert not (out / "artifact.json").exists() and not (out / lock.LOCK).exists()


def test_the_monitor_reads_its_intermediate_result_as_data_never_as_code(tmp_path):
    from beam_jobs.monitor.pipeline import decode_result, encode_result
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with pytest.raises(ValueError):
        decode_result(pickle.dumps(Payload()))
    assert not marker.exists()
    result = {"counts": {"flights_read": 3}, "edges/raw": {"dep_delay": np.array(
        [-1.5, 0.25, np.inf], np.float64)}, "hist": {("a", 1): np.arange(4, dtype=np.int64)},
        "skew": (0.1, np.float32(0.3)), "f32": np.array([[0.1, 0.2]], np.float32)}
    back = decode_result(encode_result(result))
    assert back["counts"] == {"flights_read": 3}
    assert back["edges/raw"]["dep_delay"].dtype == np.float64
    assert back["edges/raw"]["dep_delay"].tolist() == [-1.5, 0.25, np.inf]
    assert back["hist"][("a", 1)].tolist() == [0, 1, 2, 3]
    assert back["skew"] == (0.1, pytest.approx(0.3))
    assert back["f32"].dtype == np.float32 and back["f32"].shape == (1, 2)
    assert np.array_equal(back["f32"], result["f32"])


def test_report_markdown_carries_no_markup_from_data_values():
    from pipelines.report.blocks import Section, Table, Text
    from pipelines.report.render import to_markdown
    cells = ("<script>alert(1)</script>", '<img src=x onerror="alert(2)">',
             "[click](javascript:alert(3))", "a|b `c`")
    md = to_markdown("Run <b>x</b>", [Section("data", "Data", (
        Table(("value",), tuple((c,) for c in cells), caption="<i>top</i> values"),
        Text("dead letter: <svg onload=alert(4)>", "alert")))])
    assert "<" not in md and ">" not in md.replace("\n> ", "\n")
    assert "| &lt;script&gt;alert(1)&lt;/script&gt; |" in md
    assert '| &lt;img src=x onerror="alert(2)"&gt; |' in md
    assert "| \\[click\\](javascript:alert(3)) |" in md
    assert "| a\\|b \\`c\\` |" in md
    assert "# Run &lt;b&gt;x&lt;/b&gt;" in md
    assert "> **dead letter: &lt;svg onload=alert(4)&gt;**" in md


@pytest.mark.parametrize("argv", [["--direct_running_mode", "multi_processing"],
                                  ["--direct_running_mode=multi_processing",
                                   "--direct_num_workers=2"]])
def test_beam_multi_processing_mode_needs_an_explicit_opt_in(argv):
    from apache_beam.options.pipeline_options import DirectOptions

    from beam_jobs.common.options import OptionsError, pipeline_options
    with pytest.raises(OptionsError, match="opens unauthenticated gRPC worker ports on every "
                                           "network interface"):
        pipeline_options(argv, job_name="hostile")
    opts = pipeline_options([*argv, "--allow_open_worker_ports"], job_name="hostile")
    assert opts.view_as(DirectOptions).direct_running_mode == "multi_processing"
