"""A local two-node Ray cluster, and a pipeline's Ray steps submitted to any Ray cluster.

python -m scripts.ray_cluster start [--state-dir .ray_cluster] [--head-cpus 2] [--worker-cpus 2]
python -m scripts.ray_cluster stop  [--state-dir .ray_cluster]
python -m scripts.ray_cluster submit pipelines/flights.yaml --run-dir RUN
    [--steps xgboost tune_xgboost] [--address http://HOST:8265] [--state-dir .ray_cluster]
    [--runtime-env local|pip] [--store RUN/lineage.sqlite]
    [--token-secret projects/P/secrets/S/versions/V]

start: head node and a worker node on 127.0.0.1, token authentication on (the token is
RAY_AUTH_TOKEN if set, else generated; kept in STATE_DIR/auth_token, mode 0600). It
prints the variables a client needs. stop: stops exactly that cluster.

submit: every Ray step of the pipeline (or --steps), in order, through `ray job submit`
to the Jobs API at --address (else RAY_API_SERVER_ADDRESS, else the cluster of
--state-dir), with RAY_AUTH_TOKEN (else the Secret Manager version --token-secret names,
else the state dir's token; the token is never a flag's value). The job's runtime_env
uploads this checkout as its working directory; --runtime-env pip also installs every
pin of requirements.lock on the nodes (default for a remote address), local uses the
Python the nodes run (default for 127.0.0.1: a cluster started by `start` runs this
checkout's .venv). Upstream outputs must already be in RUN (a path every node can read:
local for a local cluster, gs:// for a remote one). Each step is recorded in the run's
lineage store. Exit status: 0 all steps succeeded, 2 bad usage or settings, else the
failing step's.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from mlbatch import logs, storage
from pipelines.lineage import LineageError
from pipelines import remote
from pipelines.ray_cluster import (ClusterError, auth_env, load_cluster, start_cluster,
                                   stop_cluster, submit_steps)
from pipelines.remote_task import TaskError, ray_token
from pipelines.spec import SpecError, load_pipeline

LOGGER = logging.getLogger("scripts.ray_cluster")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "submit"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--state-dir", default=".ray_cluster",
                         help="where the local cluster's address and token are kept")
        if name == "start":
            cmd.add_argument("--head-cpus", type=int, default=2)
            cmd.add_argument("--worker-cpus", type=int, default=2)
    submit = sub.choices["submit"]
    submit.add_argument("pipeline", help="the pipeline file")
    submit.add_argument("--run-dir", required=True, help="the run directory (outputs)")
    submit.add_argument("--steps", nargs="+", help="only these Ray steps (default: all)")
    submit.add_argument("--address", help="the cluster's Jobs API, http://HOST:PORT")
    submit.add_argument("--runtime-env", choices=("local", "pip"),
                        help="default: local for a 127.0.0.1 address, else pip")
    submit.add_argument("--store", help="the lineage store (default RUN_DIR/lineage.sqlite)")
    submit.add_argument("--token-secret", default="",
                        help="Secret Manager version holding the cluster's token")
    return parser.parse_args(argv)


def _submit(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.pipeline)
    steps = remote.ray_steps(pipeline, args.steps)
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS")
    token = ray_token(dict(os.environ), args.token_secret)
    if not address or not token:
        cluster = load_cluster(args.state_dir)
        address, token = address or cluster.dashboard_url, token or cluster.token()
    if not urlparse(address).scheme.startswith("http"):
        raise remote.RemoteConfigError(f"--address {address!r} must be the Jobs API URL "
                                       "(http://HOST:PORT, the dashboard port)")
    local = urlparse(address).hostname in ("127.0.0.1", "localhost")
    run_dir = args.run_dir if storage.is_remote(args.run_dir) else str(Path(args.run_dir)
                                                                        .resolve())
    results = submit_steps(pipeline, steps, run_dir, address, env=auth_env(token),
                           runtime_env_mode=args.runtime_env or ("local" if local else "pip"),
                           store=args.store)
    failed = [s for s, rc in results.items() if rc != 0]
    for step, rc in results.items():
        LOGGER.info("%-14s %s", step, "succeeded" if rc == 0 else f"failed (exit {rc})")
    return results[failed[0]] if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "start":
            info = start_cluster(args.state_dir, head_cpus=args.head_cpus,
                                 worker_cpus=args.worker_cpus)
            sys.stdout.write(f"export RAY_ADDRESS={info.gcs_address}\n"
                             f"export RAY_API_SERVER_ADDRESS={info.dashboard_url}\n"
                             f"export RAY_AUTH_MODE=token\n"
                             f"export RAY_AUTH_TOKEN=$(cat {info.token_file})\n")
            return 0
        if args.command == "stop":
            LOGGER.info("stopped (%d processes)", stop_cluster(args.state_dir))
            return 0
        return _submit(args)
    except (ClusterError, SpecError, remote.RemoteConfigError, LineageError, TaskError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
