"""pipelines.remote_task, the command of every Vertex AI task: retried Ray submissions
get a fresh id, a cancelled task stops its Ray job (both against the real local Ray
cluster), a committed output is done without a launch, the Ray token never travels as
a value, and a remote run's lineage records import into a store."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid

import pytest

from mlbatch.artifacts import read_manifest
from pipelines import remote_task
from tests.conftest import REPO_ROOT

PY = sys.executable


def _task(out, uri_file, *extra, command):
    return [PY, "-m", "pipelines.remote_task", "--step", "s", "--output", str(out),
            "--output-uri-file", str(uri_file), *extra, "--", *command]


def _ray(cluster, base):
    return ["--kind", "ray", "--ray-address", cluster.dashboard_url, "--submission-id", base,
            "--poll-s", "0.5"]


def _statuses(client, base):
    return {j.submission_id: str(j.status).rsplit(".", 1)[-1] for j in client.list_jobs()
            if (j.submission_id or "").startswith(base)}


@pytest.mark.cluster
def test_ray_retries_take_the_next_attempt_and_a_cancel_stops_the_job(ray_cluster, tmp_path):
    from ray.job_submission import JobSubmissionClient
    client = JobSubmissionClient(ray_cluster.dashboard_url)
    base = f"t-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in ray_cluster.env.items() if k != "RAY_ADDRESS"}
    fail = _task(tmp_path / "out", tmp_path / "uri", *_ray(ray_cluster, base),
                 command=[PY, "-c", "import sys; sys.exit(3)"])
    for _ in range(2):  # the task and its retry: no "submission id already exists"
        proc = subprocess.run(fail, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 1, proc.stderr[-2000:]
    assert _statuses(client, base) == {f"{base}-attempt-1": "FAILED",
                                       f"{base}-attempt-2": "FAILED"}
    assert not (tmp_path / "uri").exists()  # a failed step hands no output on

    sleeper = subprocess.Popen(_task(tmp_path / "out", tmp_path / "uri",
                                     *_ray(ray_cluster, base),
                                     command=[PY, "-c", "import time; time.sleep(600)"]),
                               env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _statuses(client, base).get(f"{base}-attempt-3") != "RUNNING":
            assert time.monotonic() < deadline and sleeper.poll() is None, "never ran"
            time.sleep(0.5)
        sleeper.send_signal(signal.SIGTERM)  # how Vertex AI / Kubernetes cancel a task
        assert sleeper.wait(timeout=120) == remote_task.CANCELLED
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    assert "step s: cancelled" in sleeper.stderr.read()
    assert _statuses(client, base)[f"{base}-attempt-3"] == "STOPPED"


def test_a_committed_output_is_done_without_a_launch(synthetic_features, tmp_path):
    run = tmp_path / "run"
    args = remote_task.parse_args([
        "--step", "features", "--kind", "ray", "--output", str(synthetic_features),
        "--output-uri-file", str(tmp_path / "uri"), "--ray-address", "http://unreachable:1",
        "--submission-id", "x", "--lineage-dir", str(run / "_lineage"), "--pipeline", "p",
        "--run", "p@1", "--job", "ray_jobs.common.synthetic", "--cache-key", "k1",
        "--params-json", '{"rows": 10}', "--", "python", "-m", "nothing", "--empty="])
    assert args.command == ["python", "-m", "nothing"]  # flags left empty are dropped
    assert remote_task.run_task(args, env={}) == 0  # never reaches the (unreachable) cluster
    assert (tmp_path / "uri").read_text() == str(synthetic_features)
    record = json.loads((run / "_lineage" / "features.json").read_text())
    assert record["digest"] == read_manifest(str(synthetic_features)).digest
    assert (record["state"], record["cache_key"], record["params"]) == ("done", "k1",
                                                                       {"rows": 10})


def test_a_cancelled_in_task_step_passes_sigterm_on(tmp_path):
    proc = subprocess.Popen(_task(tmp_path / "out", tmp_path / "uri", "--kind", "local",
                                  command=[PY, "-c", "import time; print('up', flush=True); "
                                                     "time.sleep(600)"]),
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == remote_task.CANCELLED


def test_the_ray_token_comes_from_the_environment_or_secret_manager():
    secret = "projects/p-1/secrets/ray-token/versions/latest"
    fetched = []
    assert remote_task.ray_token({"RAY_AUTH_TOKEN": "abc"}, secret, fetched.append) == "abc"
    assert fetched == []  # the environment (a Kubernetes secret) wins
    assert remote_task.ray_token({}, secret, lambda name: f"token of {name}") == (
        f"token of {secret}")
    assert remote_task.ray_token({}, "") is None  # a cluster without token auth
    with pytest.raises(remote_task.TaskError, match="'hunter2' is no Secret Manager version"):
        remote_task.ray_token({}, "hunter2")


def test_bad_dataflow_options_fail_the_task_before_launching(tmp_path, capsys):
    argv = ["--step", "f", "--kind", "beam", "--output", str(tmp_path / "o"),
            "--output-uri-file", str(tmp_path / "u"), "--dataflow-options",
            "--machine_type n2 --max_num_workers x", "--", PY, "-c", "raise SystemExit(9)"]
    assert remote_task.main(argv) == 2
    assert "invalid int value: 'x'" in capsys.readouterr().err


def test_remote_lineage_records_import_into_the_store(synthetic_features, tmp_path, capsys):
    from pipelines.lineage import LineageStore
    from pipelines.__main__ import main
    run = tmp_path / "run"
    for step in ("a", "b"):
        args = remote_task.parse_args([
            "--step", step, "--kind", "local", "--output", str(synthetic_features),
            "--output-uri-file", str(tmp_path / step), "--lineage-dir", str(run / "_lineage"),
            "--pipeline", "p", "--run", "p@vertex-1", "--job", "ray_jobs.common.synthetic",
            "--", "true"])
        assert remote_task.run_task(args, env={}) == 0
    assert main(["import-lineage", str(run)]) == 0
    assert f"imported 2 steps into {run / 'lineage.sqlite'}" in capsys.readouterr().out
    with LineageStore(run / "lineage.sqlite") as store:
        names = sorted(e.name for e in store.get_executions())
    assert names == ["p@vertex-1/a", "p@vertex-1/b"]
    record = json.loads((run / "_lineage" / "a.json").read_text())
    (run / "_lineage" / "a.json").write_text(json.dumps({**record, "digest": "sha256:0"}))
    assert main(["import-lineage", str(run)]) == 2  # rewritten since: refused, named
    assert "a.json: its output" in capsys.readouterr().err


@pytest.mark.cluster
def test_preflight_checks_the_cluster_and_the_token_before_any_step(ray_cluster):
    env = {k: v for k, v in ray_cluster.env.items() if k != "RAY_ADDRESS"}

    def preflight(address, token, options=""):
        return subprocess.run([PY, "-m", "pipelines.remote_task", "preflight",
                               f"--ray-address={address}", f"--dataflow-options={options}"],
                              env={**env, "RAY_AUTH_TOKEN": token}, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    ok = preflight(ray_cluster.dashboard_url, ray_cluster.token, "--machine_type n2")
    assert ok.returncode == 0, ok.stderr[-2000:]
    wrong = preflight(ray_cluster.dashboard_url, "0" * 64)
    assert wrong.returncode == 2
    assert f"error: {ray_cluster.dashboard_url} refuses the token (Authentication failed" in (
        wrong.stderr)
    bad = preflight("10.0.0.1:6379", ray_cluster.token, "--max_num_workers x")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-2:] == [
        "error: dataflow_options: argument --max_num_workers: invalid int value: 'x'",
        "error: ray_address '10.0.0.1:6379' is not the cluster's Jobs API (http://HOST:8265)"]
