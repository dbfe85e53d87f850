"""Shared test fixtures: one real local Ray head node for the whole session.

The cluster is started the way a user starts one (`ray start --head`), bound to
loopback only, with Ray 2.60's token authentication on. Tests reach it in two ways:
`ray.init(address=cluster.gcs_address)` in-process, or the Jobs API at
`cluster.dashboard_url` (`ray job submit`), which needs `cluster.env`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Set before any test module imports ray (Ray reads both when it is first imported):
# - the session's auth token: Ray 2.60 caches its token state at import time;
# - node IP = loopback: on Linux Ray otherwise advertises the host's interface address
#   even for `ray start --node-ip-address=127.0.0.1` (this switch is Ray's own loopback
#   mode for single-machine clusters).
SESSION_TOKEN = os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
RAY_BIN = str(Path(sys.executable).with_name("ray"))
# Logical CPUs advertised by the test cluster: more than the 2 physical cores so that
# a Tune trial (1 CPU) and its 2 training actors can be placed at once.
TEST_CLUSTER_CPUS = 4


@dataclasses.dataclass(frozen=True)
class RayTestCluster:
    gcs_address: str  # "127.0.0.1:<port>", for ray.init(address=...)
    dashboard_url: str  # "http://127.0.0.1:<port>", for the Jobs API
    token: str
    num_cpus: int

    @property
    def env(self) -> dict[str, str]:
        """Environment for a client process (e.g. `ray job submit`) of this cluster."""
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                   RAY_ADDRESS=self.gcs_address, RAY_API_SERVER_ADDRESS=self.dashboard_url)
        return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_cluster(temp_dir: Path) -> None:
    """Stops this fixture's head node only (`ray stop` would stop every Ray on the host):
    its processes are the ones started with its private temp dir; workers exit with them."""
    from pipelines.ray_cluster import end_processes
    end_processes(temp_dir)


def built_once(tmp_path_factory, name: str, build):
    """A session fixture's value, ``build(empty dir)``, built once per test run.

    Under pytest-xdist every worker is a session of its own and would build each session
    fixture again: the first worker to need this one builds it in the run's shared temp
    dir while holding a lock on it; the others wait for it and reuse what it built (the
    value pickled beside it). Only for fixtures whose value is files (the flights slice,
    its features, models and runs): processes (a Ray head node, the storage emulator)
    stay one per worker."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    import fcntl
    import pickle

    shared = tmp_path_factory.getbasetemp().parent / "built_once"  # the run's, not the worker's
    shared.mkdir(exist_ok=True)
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed, or when the worker dies
        value = shared / f"{name}.pickle"
        if not value.exists():  # first here, or the first builder failed
            out = shared / name
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            tmp = value.with_suffix(".partial")
            tmp.write_bytes(pickle.dumps(build(out)))
            tmp.rename(value)
        return pickle.loads(value.read_bytes())


@pytest.fixture(scope="session")
def ray_cluster() -> RayTestCluster:
    """A real Ray head node on 127.0.0.1 with token auth, shared by every test."""
    token = SESSION_TOKEN
    # Every port explicit: the dashboard agent's HTTP port is otherwise a fixed default
    # (52365), which a second cluster on the same machine cannot bind.
    # So is the Ray client server's (10001): two sessions (pytest-xdist workers) would clash.
    port, dash_port, agent_port, client_port = (_free_port() for _ in range(4))
    temp_dir = Path(f"/tmp/ray_mlbatch_{os.getpid()}")  # short: Ray's socket paths are length-limited
    # The head node (and so every job's entrypoint) runs with this venv first on PATH,
    # as it would for a user who activated it.
    venv_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # RAY_ADDRESS: the workers' state-API calls (Ray Train's PlacementGroupCleaner) find this
    # cluster, not "several Ray instances" when both xdist workers' clusters run.
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
               RAY_USAGE_STATS_ENABLED="0", PATH=venv_path, RAY_ADDRESS=f"127.0.0.1:{port}")
    cmd = [RAY_BIN, "start", "--head", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", f"--port={port}", f"--dashboard-port={dash_port}",
           f"--dashboard-agent-listen-port={agent_port}", f"--ray-client-server-port={client_port}",
           f"--num-cpus={TEST_CLUSTER_CPUS}", "--num-gpus=0", f"--temp-dir={temp_dir}",
           "--disable-usage-stats"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:  # what it started before it gave up would outlive the session
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        pytest.fail(f"ray start failed:\n{proc.stdout}\n{proc.stderr}")
    cluster = RayTestCluster(gcs_address=f"127.0.0.1:{port}",
                             dashboard_url=f"http://127.0.0.1:{dash_port}",
                             token=token, num_cpus=TEST_CLUSTER_CPUS)
    try:
        yield cluster
    finally:
        try:
            import ray
            if ray.is_initialized():
                ray.shutdown()
        except ImportError:
            pass
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture()
def ray_connected(ray_cluster):
    """The test process as a driver of the shared cluster (disconnected afterwards)."""
    import ray
    if not ray.is_initialized():
        ray.init(address=ray_cluster.gcs_address, log_to_driver=False)
    yield ray_cluster


@pytest.fixture(scope="session")
def synthetic_features(tmp_path_factory) -> Path:
    """A small feature directory in the feature job's format (binary label), shared."""
    from ray_jobs.common.synthetic import write_synthetic_features
    return write_synthetic_features(tmp_path_factory.mktemp("synthetic_features"),
                                    n_train=4000, n_eval=1000, seed=0)


FLIGHTS_SLICE_ROWS = 3000


def run_feature_job(input_dir: Path, output_dir: Path, *extra: str,
                    schema: Path = REPO_ROOT / "schemas" / "flights.yaml"
                    ) -> subprocess.CompletedProcess:
    """Runs `python -m beam_jobs.features` as a user would (a subprocess)."""
    cmd = [sys.executable, "-m", "beam_jobs.features", "--schema", str(schema),
           "--input", str(input_dir), "--output", str(output_dir), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)


@contextlib.contextmanager
def _restores_job_settings():
    """The feature job sets TF_CPP_MIN_LOG_LEVEL and some loggers' levels for its own
    process: run in the test process, it gets them back afterwards."""
    import logging

    saved_env = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    names = ("apache_beam", "apache_beam.typehints", "apache_beam.utils.retry", "tensorflow",
             "absl")
    saved_levels = {n: logging.getLogger(n).level for n in names}
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = saved_env
        for n, level in saved_levels.items():
            logging.getLogger(n).setLevel(level)


def _feature_argv(input_dir, output_dir, extra, schema) -> list[str]:
    return ["--schema", str(schema), "--input", str(input_dir), "--output", str(output_dir),
            *extra]


def feature_job_main(capsys, input_dir, output_dir, *extra: str,
                     schema: Path = REPO_ROOT / "schemas" / "flights.yaml") -> tuple[int, str]:
    """The feature job's command line, ``main(argv)``, in this process: (exit code, stderr).

    For errors that stop the job before its pipeline runs (usage, schema, options, inputs,
    an existing output): the same code path as ``python -m beam_jobs.features`` without a
    process start-up. ``run_feature_job`` stays the way to test the CLI as a process.
    """
    from beam_jobs.features.__main__ import main
    capsys.readouterr()
    with _restores_job_settings():
        code = main(_feature_argv(input_dir, output_dir, extra, schema))
    return code, capsys.readouterr().err


def feature_job_in_process(input_dir, output_dir, *extra: str,
                           schema: Path = REPO_ROOT / "schemas" / "flights.yaml") -> dict:
    """The feature job's ``run(argv)`` in this process: the committed output's summary.

    For tests of what a run writes, not of the process (no interpreter start-up, no second
    TensorFlow import); ``flights_features`` and the CLI tests run it as a process."""
    from beam_jobs.features.__main__ import run
    with _restores_job_settings():
        return run(_feature_argv(input_dir, output_dir, extra, schema), save_main_session=False)


@pytest.fixture(scope="session")
def flights_slice(tmp_path_factory) -> Path:
    """The first FLIGHTS_SLICE_ROWS flights with the full weather and planes tables."""
    from scripts.export_flights import export

    def build(out: Path) -> Path:
        export(out, rows=FLIGHTS_SLICE_ROWS)
        return out
    return built_once(tmp_path_factory, "flights_raw", build)


@pytest.fixture(scope="session")
def flights_features(flights_slice, tmp_path_factory) -> Path:
    """Real feature-job output (train/ eval/ transform_fn/ manifest) on the flights slice."""
    def build(out: Path) -> Path:
        proc = run_feature_job(flights_slice, out, "--overwrite")
        if proc.returncode != 0:
            pytest.fail(f"feature job failed:\n{proc.stderr[-5000:]}")
        return out
    return built_once(tmp_path_factory, "flights_features", build)


# --- Cloud Storage, offline -------------------------------------------------------------------
EMULATOR_BUCKET = "mlbatch-test"
# google-auth loads this without any network call; with a token valid until 2999 it never
# refreshes it. Beam's GCS file system (apache_beam/internal/gcp/auth.py) otherwise asks
# google.auth.default() for credentials with 4 exponential-backoff retries before it
# falls back to an anonymous client: ~20 s per process. The emulator ignores the token.
_EMULATOR_CREDENTIALS = {"type": "authorized_user", "client_id": "emulator",
                         "client_secret": "emulator", "refresh_token": "emulator",
                         "token": "emulator", "expiry": "2999-01-01T00:00:00Z"}


@dataclasses.dataclass(frozen=True)
class StorageEmulator:
    host: str  # "http://127.0.0.1:<port>" (STORAGE_EMULATOR_HOST)
    bucket: str
    env: dict[str, str]  # what the test process and its subprocesses get

    def uri(self, *parts: str) -> str:
        return "/".join([f"gs://{self.bucket}", *parts])


# The emulator runs in its own process: its HTTP server handles one request at a time,
# and in a thread of the (busy) test process pyarrow's parallel reads starved and timed out.
_EMULATOR_MAIN = """
import sys
from gcp_storage_emulator.server import create_server
server = create_server("127.0.0.1", int(sys.argv[1]), in_memory=True, default_bucket=sys.argv[2])
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the fixture closes our stdin
server.stop()
"""


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory) -> StorageEmulator:
    """A Cloud Storage emulator (gcp-storage-emulator, in memory) on 127.0.0.1 with the
    bucket ``mlbatch-test``. While it runs, STORAGE_EMULATOR_HOST points this process and
    every subprocess at it: pyarrow's GcsFileSystem (mlbatch.storage) and Beam's GCS file
    system both talk to it instead of Google."""
    import json

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _EMULATOR_MAIN, str(port), EMULATOR_BUCKET],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        pytest.fail("the storage emulator did not start")
    creds = tmp_path_factory.mktemp("gcs_emulator") / "credentials.json"
    creds.write_text(json.dumps(_EMULATOR_CREDENTIALS))
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
           "GOOGLE_APPLICATION_CREDENTIALS": str(creds), "GOOGLE_CLOUD_PROJECT": "mlbatch-test"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield StorageEmulator(host=env["STORAGE_EMULATOR_HOST"], bucket=EMULATOR_BUCKET, env=env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- trained models on the flights slice (for scoring, monitoring and the report) ------------
@pytest.fixture(scope="session")
def flights_xgboost(flights_features, ray_cluster, tmp_path_factory) -> Path:
    """A committed XGBoost model artifact trained on ``flights_features`` (1 actor)."""
    from ray_jobs.xgboost import driver
    from ray_jobs.xgboost.config import XGBoostConfig
    from tests.xgboost.helpers import connect_test_process
    connect_test_process(ray_cluster)  # also where another worker built it: tests expect it

    def build(out: Path) -> Path:
        driver.run(XGBoostConfig(features=str(flights_features), output=str(out), num_actors=1,
                                 cpus_per_actor=1, num_boost_round=15, early_stopping_rounds=5,
                                 max_actor_restarts=0, placement_timeout_s=30.0))
        return out
    return built_once(tmp_path_factory, "flights_xgboost", build)


@pytest.fixture(scope="session")
def flights_jax(flights_features, tmp_path_factory) -> Path:
    """A committed JAX model artifact trained on ``flights_features`` (in process, 2 epochs)."""
    from ray_jobs.jax import driver
    from tests.jax.conftest import tiny_config

    def build(out: Path) -> Path:
        driver.run(tiny_config(epochs=2, batch_size=128), str(flights_features), str(out))
        return out
    return built_once(tmp_path_factory, "flights_jax", build)


# --- scoring and monitoring runs on the flights slice (shared by score, monitor, report) -----
@pytest.fixture(scope="session")
def flights_scored(flights_slice, flights_features, flights_xgboost, tmp_path_factory):
    """(output dir, summary) of the scoring job: flights_xgboost on the slice's raw rows."""
    from beam_jobs.score.__main__ import run

    def build(out: Path):
        return out, run(["--features", str(flights_features), "--model", str(flights_xgboost),
                         "--input", str(flights_slice), "--output", str(out)],
                        save_main_session=False)
    return built_once(tmp_path_factory, "scored_xgboost", build)


def perturb_flights(src: Path, dst: Path) -> int:
    """A copy of the raw slice with distance x4 and carrier "ZZ" on every third flight."""
    import csv
    shutil.copytree(src, dst)
    with open(src / "flights.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r["distance"] = str(float(r["distance"]) * 4)
        if i % 3 == 0:
            r["carrier"] = "ZZ"
    with open(dst / "flights.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return len(rows)


@pytest.fixture(scope="session")
def flights_monitor_skew(flights_features, flights_slice, flights_xgboost, tmp_path_factory):
    """(exit code, output dir): the monitor on the training data's own raw rows, with the
    model (skew mode; nothing should breach)."""
    from beam_jobs.monitor.__main__ import main

    def build(out: Path):
        return main(["--baseline", str(flights_features), "--input", str(flights_slice),
                     "--output", str(out), "--model", str(flights_xgboost), "--overwrite"]), out
    return built_once(tmp_path_factory, "monitor_skew", build)


@pytest.fixture(scope="session")
def flights_monitor_drift(flights_monitor_skew, flights_features, flights_slice,
                          tmp_path_factory):
    """(exit code, output dir): the monitor on a perturbed copy (perturb_flights) in drift
    mode against flights_monitor_skew's output (distance and carrier should breach)."""
    from beam_jobs.monitor.__main__ import main

    def build(root: Path):
        raw, out = root / "raw", root / "out"
        perturb_flights(flights_slice, raw)
        return main(["--baseline", str(flights_features), "--input", str(raw), "--output",
                     str(out), "--against", str(flights_monitor_skew[1])]), out
    return built_once(tmp_path_factory, "monitor_drift", build)


@pytest.fixture(scope="module")
def connected_gcs(gcs_emulator, ray_cluster):
    """This process as a Ray driver whose workers see the storage emulator, connected the
    way ``ray_jobs.common.cluster.connect`` connects a job; disconnected afterwards."""
    import ray

    from ray_jobs.common import cluster
    if ray.is_initialized():
        ray.shutdown()
    runtime_env = cluster.worker_runtime_env()
    assert runtime_env == {"env_vars": {"STORAGE_EMULATOR_HOST": gcs_emulator.host}}
    from tests.xgboost.helpers import connect_test_process
    connect_test_process(ray_cluster, runtime_env=runtime_env)
    yield ray_cluster
    ray.shutdown()
