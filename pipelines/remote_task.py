"""One pipeline step as a Kubeflow / Vertex AI task: launches the step where it runs,
waits for it, and is safe to retry and to cancel.

    python -m pipelines.remote_task --step NAME --kind beam|ray|local --output URI
        --output-uri-file PATH [--ok-exits "0 3"] [--dataflow-options "FLAGS"]
        [--ray-address http://HOST:8265 --submission-id BASE --runtime-env-json JSON
         --ray-token-secret projects/P/secrets/S/versions/V]
        [--lineage-dir RUN/_lineage --pipeline NAME --run NAME --job MODULE
         --cache-key KEY --input URI ...] -- python -m <job> <flags>

* **Done already**: an output that holds a committed artifact is the step's result (a
  retried task whose job finished, or a rerun of the same content): nothing is launched,
  its digest is logged and recorded.
* **Retry**: a Ray step is submitted as ``BASE-attempt-N``, N one more than any attempt
  the cluster knows, so a retried task is never refused for a used submission id; an
  earlier attempt still running (its task was lost) is stopped first: two writers of
  one output are never left running.
* **Cancel**: SIGTERM (how Kubernetes and Vertex AI end a cancelled task) stops the Ray
  job (``stop_job``, waited for); for Beam steps it reaches the launcher, which cancels
  its Dataflow job (``beam_jobs.common.options``). Exit status 143.
* **Ray token**: RAY_AUTH_TOKEN from the task's environment (a Kubernetes secret), else
  the Secret Manager secret version ``--ray-token-secret`` names; never a parameter or a
  command-line value.
* **Lineage**: a step that committed writes ``LINEAGE_DIR/<step>.json``, the arguments of
  ``pipelines.lineage.record_step``; ``python -m pipelines import-lineage`` loads them.

``python -m pipelines.remote_task preflight --ray-address A --ray-token-secret S
--dataflow-options F``: the run's first task. Checks the Dataflow options and that the
Ray cluster's Jobs API answers with the token, so a wrong address or token fails the run
before any Dataflow work, not at its first Ray task.

Exit status: 0 when the output is committed (the job's exit among --ok-exits), 2 for bad
settings, 143 when cancelled, else the job's (1 when it left no committed output).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from mlbatch import logs, storage
from mlbatch.artifacts import ArtifactError, read_manifest
from pipelines import remote
from mlbatch.errors import JobError

LOGGER = logging.getLogger(__name__)

CANCELLED = 143  # 128 + SIGTERM
_SECRET = re.compile(r"^projects/[^/]+/secrets/[^/]+/versions/[^/]+$")
_ATTEMPT = "-attempt-"
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class TaskError(RuntimeError, JobError):
    """The task's settings are wrong (exit 2)."""


class Cancelled(Exception):
    """SIGTERM arrived: the task was cancelled."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipelines.remote_task",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--step", required=True)
    p.add_argument("--kind", required=True, choices=("beam", "ray", "local"))
    p.add_argument("--output", required=True, help="the step's output (artifact) URI")
    p.add_argument("--output-uri-file", required=True, help="KFP's output parameter file")
    p.add_argument("--ok-exits", default="0", help="exit statuses of a committed run")
    p.add_argument("--dataflow-options", default="", help="more Beam/Dataflow flags")
    p.add_argument("--ray-address", default="")
    p.add_argument("--submission-id", default="")
    p.add_argument("--runtime-env-json", default="{}")
    p.add_argument("--ray-token-secret", default="")
    p.add_argument("--poll-s", type=float, default=5.0, help=argparse.SUPPRESS)
    p.add_argument("--params-json", default="{}", help="the step's args (for lineage)")
    for name in ("lineage-dir", "pipeline", "run", "job", "cache-key"):
        p.add_argument(f"--{name}", default="")
    p.add_argument("--input", action="append", default=[], help="an upstream artifact URI")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- the step's command")
    args = p.parse_args(argv)
    args.command = [t for t in args.command[args.command[:1] == ["--"]:]
                    if not re.fullmatch(r"--[\w-]+=", t)]  # a flag left empty by a parameter
    if not args.command:
        p.error("the step's command is missing (after --)")
    return args


def committed_digest(output: str) -> str | None:
    """The digest of the committed artifact in ``output`` (None: none committed)."""
    try:
        return read_manifest(output).digest
    except (ArtifactError, FileNotFoundError, storage.StorageError):
        return None


# --- the Ray token -----------------------------------------------------------------------
def ray_token(env: dict[str, str], secret: str,
              fetch: Callable[[str], str] | None = None) -> str | None:
    """RAY_AUTH_TOKEN from ``env``, else the Secret Manager version ``secret`` names."""
    if env.get("RAY_AUTH_TOKEN"):
        return env["RAY_AUTH_TOKEN"]
    if not secret:
        return None
    if not _SECRET.match(secret):
        raise TaskError(f"the Ray token secret {secret!r} is no Secret Manager version "
                        "(projects/PROJECT/secrets/NAME/versions/VERSION|latest)")
    return (fetch or _access_secret)(secret)


def _access_secret(name: str) -> str:
    from google.cloud import secretmanager

    client = secretmanager.SecretManagerServiceClient()
    return client.access_secret_version(name=name).payload.data.decode().strip()


# --- Ray -----------------------------------------------------------------------------------
def next_submission_id(client: Any, base: str) -> str:
    """``BASE-attempt-N``: N one more than the attempts the cluster knows. Earlier attempts
    still running are stopped (and waited for) first."""
    attempts = {}
    for job in client.list_jobs():
        sid = job.submission_id or ""
        if sid.startswith(base + _ATTEMPT) and sid[len(base + _ATTEMPT):].isdigit():
            attempts[int(sid[len(base + _ATTEMPT):])] = (sid, str(job.status))
    for sid, status in attempts.values():
        if status.rsplit(".", 1)[-1] not in _TERMINAL:
            LOGGER.warning("stopping %s, an earlier attempt still %s", sid, status)
            client.stop_job(sid)
            _wait_terminal(client, sid, 1.0)
    return f"{base}{_ATTEMPT}{max(attempts, default=0) + 1}"


def _status(client: Any, sid: str) -> str:
    return str(client.get_job_status(sid)).rsplit(".", 1)[-1]


def _wait_terminal(client: Any, sid: str, poll_s: float) -> str:
    while (status := _status(client, sid)) not in _TERMINAL:
        time.sleep(poll_s)
    return status


def run_ray(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Submits the step as a Ray job and waits; a SIGTERM stops the job."""
    client = _client(args.ray_address, ray_token(env, args.ray_token_secret))
    sid = next_submission_id(client, args.submission_id)
    client.submit_job(entrypoint=shlex.join(args.command), submission_id=sid,
                      runtime_env=json.loads(args.runtime_env_json))
    LOGGER.info("submitted %s to %s", sid, args.ray_address)
    try:
        status = _wait_terminal(client, sid, args.poll_s)
    except Cancelled:
        LOGGER.warning("cancelled: stopping Ray job %s", sid)
        client.stop_job(sid)
        _wait_terminal(client, sid, 1.0)
        raise
    sys.stdout.write(client.get_job_logs(sid)[-20000:])
    LOGGER.info("Ray job %s: %s", sid, status)
    return 0 if status == "SUCCEEDED" else 1


# --- Beam and in-task steps ----------------------------------------------------------------
def run_here(args: argparse.Namespace) -> int:
    """Runs the command in this container (a Dataflow launcher, or the step itself); a
    SIGTERM is passed on to it (a Dataflow launcher then cancels its job)."""
    command = list(args.command)
    if args.kind == "beam":
        extra = shlex.split(args.dataflow_options)
        problems = remote.dataflow_option_problems(extra)
        if problems:
            raise TaskError("dataflow_options: " + "; ".join(problems))
        command += extra
    proc = subprocess.Popen(command)
    try:
        return proc.wait()
    except Cancelled:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise


# --- preflight ---------------------------------------------------------------------------
def preflight(argv: list[str], env: dict[str, str] | None = None) -> int:
    """The run's settings checked before any step: exit 0, or 2 naming each problem."""
    p = argparse.ArgumentParser(prog="python -m pipelines.remote_task preflight")
    p.add_argument("--ray-address", default="")
    p.add_argument("--ray-token-secret", default="")
    p.add_argument("--dataflow-options", default="")
    args = p.parse_args(argv)
    env = dict(os.environ if env is None else env)
    problems = [f"dataflow_options: {x}" for x in
                remote.dataflow_option_problems(shlex.split(args.dataflow_options))]
    if args.ray_address:
        try:
            _check_ray(args.ray_address, ray_token(env, args.ray_token_secret))
        except (TaskError, RuntimeError, OSError, ValueError) as e:
            problems.append(str(e).splitlines()[0])
    for problem in problems:
        sys.stderr.write(f"error: {problem}\n")
    return 2 if problems else 0


def _check_ray(address: str, token: str | None) -> None:
    _client(address, token).list_jobs()


def _client(address: str, token: str | None) -> Any:
    """A Jobs API client of the cluster at ``address`` (TaskError: wrong address or token)."""
    if not address.startswith(("http://", "https://")):
        raise TaskError(f"ray_address {address!r} is not the cluster's Jobs API "
                        "(http://HOST:8265)")
    if token:  # read by Ray when it is imported, below
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as e:
        raise TaskError(f"{address} refuses the token ({str(e).splitlines()[0]})") from None


# --- the task ----------------------------------------------------------------------------
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_lineage(args: argparse.Namespace, started: str, digest: str) -> str | None:
    """LINEAGE_DIR/<step>.json: the step as ``pipelines.lineage.record_step`` records it."""
    if not args.lineage_dir:
        return None
    record = {"pipeline_run": args.run, "step_name": args.step, "job": args.job,
              "runs_on": {"beam": "dataflow", "ray": f"ray:{args.ray_address}",
                          "local": "vertex"}[args.kind],
              "params": json.loads(args.params_json), "cache_key": args.cache_key or None,
              "inputs": args.input,
              "output": args.output, "started": started, "ended": _now(), "state": "done",
              "pipeline": args.pipeline or None, "error": None, "digest": digest}
    uri = storage.join(args.lineage_dir, f"{args.step}.json")
    storage.write_text(uri, json.dumps(record, indent=1, sort_keys=True))
    return uri


def run_task(args: argparse.Namespace, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    started = _now()
    digest = committed_digest(args.output)
    if digest is not None:
        LOGGER.info("%s is committed already (%s): nothing to launch", args.output, digest)
    else:
        rc = run_ray(args, env) if args.kind == "ray" else run_here(args)
        ok = {int(c) for c in args.ok_exits.split()}
        digest = committed_digest(args.output)
        if rc not in ok or digest is None:
            LOGGER.error("step %s: exit %d%s", args.step, rc,
                         "" if digest else f", no committed artifact in {args.output}")
            return rc if rc not in ok else 1
    write_lineage(args, started, digest)
    os.makedirs(os.path.dirname(args.output_uri_file) or ".", exist_ok=True)
    with open(args.output_uri_file, "w") as f:
        f.write(args.output)
    return 0


@contextlib.contextmanager
def _cancel_on_sigterm():
    def _raise(signum, frame):
        raise Cancelled()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["preflight"]:
        return preflight(argv[1:])
    args = parse_args(argv)
    try:
        with _cancel_on_sigterm():
            return run_task(args)
    except TaskError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except Cancelled:
        sys.stderr.write(f"step {args.step}: cancelled\n")
        return CANCELLED


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())

