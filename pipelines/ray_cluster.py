"""A real local Ray cluster (a head node and a second worker node, both on 127.0.0.1,
token authentication on) and the submission of a pipeline's Ray steps to any cluster.

``start_cluster`` runs ``ray start --head`` and ``ray start --address`` the way a user
would, every port explicit (two Ray nodes on one machine cannot share the dashboard
agent's default port, nor two clusters the Ray client's), and keeps what a client needs
in ``STATE_DIR/cluster.json`` and the token in ``STATE_DIR/auth_token`` (mode 0600).
``stop_cluster`` stops exactly that cluster: the processes started with its private
temp dir (``ray stop`` would stop every Ray on the machine).

``submit_steps`` sends each Ray step (training, Tune) through ``ray job submit`` to the
cluster's Jobs API, waits for it, and records it in the run's lineage store.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mlbatch import storage
from mlbatch.errors import ClusterError
from pipelines.lineage import STORE_NAME, LineageStore, record_step
from pipelines import remote
from pipelines.spec import Pipeline, Step, resolve

LOGGER = logging.getLogger(__name__)

RAY_BIN = str(Path(sys.executable).with_name("ray"))
STATE_FILE, TOKEN_FILE = "cluster.json", "auth_token"
# Ray's single-machine switch: =0 keeps the head node, its GCS and every driver on
# 127.0.0.1 (Ray otherwise advertises and binds the host's interface address), but
# `ray start --address` refuses to add a node under it. With =1 it adds one, yet first
# rewrites a 127.0.0.1 address to the host's interface address, where this loopback
# GCS does not listen. So the worker node is started by Ray's own CLI with =1 and that
# one rewrite turned off (the node itself is --node-ip-address=127.0.0.1).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_WORKER_START = """import sys
from ray._private import services
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()
"""


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    gcs_address: str  # 127.0.0.1:PORT (ray.init, ray start --address)
    dashboard_url: str  # http://127.0.0.1:PORT (the Jobs API: ray job submit)
    temp_dir: str
    token_file: str
    nodes: int

    def token(self) -> str:
        return Path(self.token_file).read_text().strip()

    def client_env(self, base: dict | None = None) -> dict[str, str]:
        """Environment for ``ray`` commands and drivers of this cluster."""
        return auth_env(self.token(), base, RAY_ADDRESS=self.gcs_address,
                        RAY_API_SERVER_ADDRESS=self.dashboard_url)


def auth_env(token: str, base: dict | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0",
               **extra)
    env[LOOPBACK_ENV] = "0"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(args: list[str], env: dict, timeout: float = 180, *, worker: bool = False) -> str:
    cli = [sys.executable, "-c", _WORKER_START] if worker else [RAY_BIN]
    proc = subprocess.run([*cli, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"ray {args[0]} failed (exit {proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def _node_flags() -> list[str]:
    return ["--node-ip-address=127.0.0.1", f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}",
            "--num-gpus=0", "--disable-usage-stats"]


def alive_nodes(info: ClusterInfo) -> int:
    """Nodes the cluster reports alive (``ray status``)."""
    out = _ray(["status", f"--address={info.gcs_address}"], info.client_env(), timeout=60)
    active = out.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return len(re.findall(r"^\s*\d+\s+node_", active, flags=re.M))


def start_cluster(state_dir: str | os.PathLike, *, head_cpus: int = 2, worker_cpus: int = 2,
                  token: str | None = None, wait_s: float = 60.0,
                  attempts: int = 2) -> ClusterInfo:
    """Starts the head node and one worker node on 127.0.0.1; returns how to reach them.

    Ray gives a starting node 30 s (fixed) to register; on a saturated machine that can
    pass, so a start that timed out is cleaned up and tried again (``attempts`` in all).
    """
    state = Path(state_dir).resolve()
    if (state / STATE_FILE).exists():
        raise ClusterError(f"{state / STATE_FILE} exists: a cluster was started from this "
                           "state dir (stop it first)")
    state.mkdir(parents=True, exist_ok=True)
    token = token or os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)
    token_file = state / TOKEN_FILE
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    for attempt in range(1, attempts + 1):
        try:
            info = _start_once(state, token_file, head_cpus, worker_cpus, wait_s)
            break
        except (ClusterError, subprocess.TimeoutExpired) as e:
            if attempt == attempts or "timed out" not in str(e):
                raise
            LOGGER.warning("cluster start attempt %d timed out; retrying", attempt)
    LOGGER.info("Ray cluster: GCS %s, Jobs API %s, 2 nodes", info.gcs_address,
                info.dashboard_url)
    return info


def _start_once(state: Path, token_file: Path, head_cpus: int, worker_cpus: int,
                wait_s: float) -> ClusterInfo:
    port, dash = _free_port(), _free_port()
    temp_dir = f"/tmp/mlbatch_ray_{port}"  # short: Ray's socket paths are length-limited
    info = ClusterInfo(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", temp_dir,
                       str(token_file), nodes=2)
    env = auth_env(token_file.read_text().strip())
    try:
        _ray(["start", "--head", f"--port={port}", "--dashboard-host=127.0.0.1",
              f"--dashboard-port={dash}", f"--ray-client-server-port={_free_port()}",
              f"--num-cpus={head_cpus}", f"--temp-dir={temp_dir}", *_node_flags()], env)
        (state / STATE_FILE).write_text(json.dumps(dataclasses.asdict(info), indent=1))
        _ray(["start", f"--address={info.gcs_address}", f"--num-cpus={worker_cpus}",
              *_node_flags()], {**env, LOOPBACK_ENV: "1"}, worker=True)
        deadline = time.monotonic() + wait_s
        while alive_nodes(info) < 2:
            if time.monotonic() > deadline:
                raise ClusterError(f"the worker node did not join {info.gcs_address} "
                                   f"within {wait_s:g}s (timed out)")
            time.sleep(1.0)
    except (ClusterError, subprocess.TimeoutExpired):
        end_processes(temp_dir)
        (state / STATE_FILE).unlink(missing_ok=True)
        raise
    return info


def load_cluster(state_dir: str | os.PathLike) -> ClusterInfo:
    path = Path(state_dir).resolve() / STATE_FILE
    if not path.is_file():
        raise ClusterError(f"no cluster started from {path.parent} ({STATE_FILE} missing)")
    return ClusterInfo(**json.loads(path.read_text()))


def _belongs(pid_dir: Path, marker: bytes) -> bool:
    """Whether a process was started with the cluster's temp dir: named in its command
    line, or, for the processes that retitle themselves (``ray::DashboardAgent``,
    ``ray::RuntimeEnvAgent``) or take no flag naming it (the Ray client server), in
    an open file (their logs live under it)."""
    if marker in (pid_dir / "cmdline").read_bytes():
        return True
    for fd in (pid_dir / "fd").iterdir():
        try:
            if marker in os.fsencode(os.readlink(fd)):
                return True
        except OSError:
            continue
    return False


def _cluster_pids(temp_dir: str) -> list[int]:
    pids, marker = [], os.fsencode(str(temp_dir))
    for pid_dir in Path("/proc").glob("[0-9]*"):
        try:
            if _belongs(pid_dir, marker):
                pids.append(int(pid_dir.name))
        except OSError:  # it exited, or is not ours to read
            continue
    return [p for p in pids if p != os.getpid()]


def _running(pid: int) -> bool:
    try:  # a zombie (state Z) has exited already
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def end_processes(temp_dir: str | os.PathLike, term_wait_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL, the processes started with ``temp_dir`` (a cluster's
    ``--temp-dir``); how many there were."""
    started = [p for p in _cluster_pids(temp_dir) if _running(p)]
    for sig, wait_s in ((signal.SIGTERM, term_wait_s), (signal.SIGKILL, 5.0)):
        pids = [p for p in _cluster_pids(temp_dir) if _running(p)]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = [p for p in pids if _running(p)]
    return len(started)


def stop_cluster(state_dir: str | os.PathLike) -> int:
    """Stops the cluster started from ``state_dir``; returns how many processes ended."""
    state = Path(state_dir).resolve()
    ended = end_processes(load_cluster(state).temp_dir)
    (state / STATE_FILE).unlink()
    return ended


def _inputs(step: Step, run_dir: str) -> list[str]:
    """The artifacts a step reads: its ``${step}[/sub]`` arguments, resolved."""
    out = []
    for value in step.args.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("${") and item != "${RUN}":
                out.append(str(resolve(item, run_dir)))
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def submit_steps(pipeline: Pipeline, steps: list[Step], run_dir: str, address: str, *,
                 env: dict[str, str], runtime_env_mode: str = "local",
                 run_name: str | None = None, store: str | None = None) -> dict[str, int]:
    """Submits each step with ``ray job submit`` (in order, waiting for each) and records
    it in the lineage store (default RUN_DIR/lineage.sqlite); returns step -> exit status.
    Stops at the first failing step. A ``gs://`` run directory needs ``store`` (a local
    path): the SQLite store cannot live in Cloud Storage."""
    if store is None and storage.is_remote(run_dir):
        raise ClusterError(f"run directory {run_dir} is not local: the lineage store "
                           f"{STORE_NAME} cannot be written there; pass a local --store")
    runtime = remote.runtime_env(runtime_env_mode)
    run_name = run_name or f"{pipeline.name}:{run_dir}"
    results: dict[str, int] = {}
    with LineageStore(store or Path(run_dir) / STORE_NAME) as store:
        for step in steps:
            argv = remote.ray_submit_argv(RAY_BIN, address, step, run_dir, runtime)
            LOGGER.info("submitting %s: %s", step.name, " ".join(argv))
            started = _now()
            proc = subprocess.run(argv, env=env, check=False)
            results[step.name] = proc.returncode
            ok = proc.returncode == 0
            record_step(store, run_name, step.name, step.job, f"ray:{address}", step.args,
                        None, _inputs(step, run_dir), os.path.join(run_dir, step.out),
                        started, _now(), "done" if ok else "failed", pipeline=pipeline.name,
                        error=None if ok else f"ray job exit {proc.returncode}")
            if not ok:
                break
    return results
