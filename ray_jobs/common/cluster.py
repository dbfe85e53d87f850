"""Connecting to Ray and checking that a job's bundles can be placed: the one module the
XGBoost, JAX and Tune jobs share for both.

Ray Train, Tune and xgboost-ray wait on a placement group that can never be created when
a run asks for more than the cluster has; users report such runs hanging. Here a job's
request (a list of resource bundles) is compared with the cluster -- or with the
enclosing placement group inside a Tune trial -- before anything starts, and fails with
what was asked and what there is.

Loopback only for local runs: a job without ``--address`` starts a single-node Ray whose
node address, and so every address derived from it (GCS, dashboard, xgboost-ray's
collective tracker, the ``jax.distributed`` coordinator), is 127.0.0.1. Ray on Linux
advertises the host's interface address even for ``_node_ip_address="127.0.0.1"``,
unless Ray's public setting ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine
mode) is in the environment when ``ray`` is first imported; the jobs' ``main`` sets it
(:func:`prefer_loopback`) before importing Ray, and :func:`connect` refuses to start a
local Ray that would not be on loopback.

Storage for the workers: Ray workers do not inherit the driver's environment. When this
driver points ``gs://`` at an emulator (``STORAGE_EMULATOR_HOST``, see
``mlbatch.storage.worker_env``), :func:`connect` passes those variables, and only those,
as the Ray job's ``runtime_env`` ``env_vars``, so every actor and task of the job reaches
the same bucket; :func:`check_worker_env` refuses a ``gs://`` run on a connection made
without them (its workers would reach another place, or hang).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence

from mlbatch import storage
from mlbatch.errors import ClusterError, PlacementError

logger = logging.getLogger(__name__)

LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's own switch, read at import
CONNECT_TIMEOUT_ENV = "MLBATCH_RAY_CONNECT_TIMEOUT_S"
_STARTED_LOCAL: list[bool] = []  # set once connect() started a private local Ray
Bundle = Mapping[str, float]


def prefer_loopback() -> None:
    """For an entry point, before anything imports Ray: a local Ray will bind 127.0.0.1
    (a value the user set already wins)."""
    os.environ.setdefault(LOCAL_ONLY_ENV, "0")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def worker_runtime_env() -> dict | None:
    """The runtime_env a job's driver connects with: the storage variables its workers
    need (``mlbatch.storage.worker_env``), or None when there are none."""
    env = storage.worker_env()
    return {"env_vars": env} if env else None


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(address: str | None) -> None:
    """``address``, else ``auto`` when RAY_ADDRESS names a cluster (as under ``ray job
    submit``), else a new local single-node Ray on 127.0.0.1; the job's runtime_env is
    :func:`worker_runtime_env` plus the cluster's own address. No-op when connected.

    Ray's workers find their cluster's state API by RAY_ADDRESS / RAY_API_SERVER_ADDRESS,
    else by scanning the host for Ray instances, which fails when the host runs several
    (Ray Train's PlacementGroupCleaner then never frees a Tune-stopped trial's workers):
    so the workers are told the address."""
    import ray

    if ray.is_initialized():
        return
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = "auto"
    env = dict((worker_runtime_env() or {}).get("env_vars", {}))
    if env:
        logger.info("passing %s to the Ray workers", sorted(env))
    if address is not None:
        target = os.environ.get("RAY_ADDRESS", "") if address == "auto" else address
        check_reachable(target)
        if target and "://" not in target:
            env.setdefault("RAY_ADDRESS", target)
        ray.init(address=address, log_to_driver=False,
                 runtime_env={"env_vars": env} if env else None)
        return
    host = ray.util.get_node_ip_address()  # what a new local Ray would advertise
    if not is_loopback(host):
        raise ClusterError(
            f"a local Ray here would listen on {host}, not loopback: set {LOCAL_ONLY_ENV}=0 "
            "before Ray is imported (the job's command line does), or pass --address")
    port = _free_loopback_port()
    env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
    ctx = ray.init(dashboard_host="127.0.0.1", dashboard_port=port, log_to_driver=False,
                   runtime_env={"env_vars": env})
    _STARTED_LOCAL.append(True)
    logger.info("local Ray on loopback: node %s, GCS %s, dashboard %s", host,
                ctx.address_info.get("gcs_address"), ctx.dashboard_url or "off")


def started_local() -> bool:
    """Whether this process's Ray is the private single-node one :func:`connect` started
    (no address): one node on this machine that no autoscaler drains or preempts."""
    import ray
    return bool(_STARTED_LOCAL) and ray.is_initialized()


def connect_timeout_s() -> float:
    """How long a job waits for its Ray address to answer (``MLBATCH_RAY_CONNECT_TIMEOUT_S``)."""
    raw = os.environ.get(CONNECT_TIMEOUT_ENV, "30")
    try:
        value = float(raw)
    except ValueError:
        raise ClusterError(f"{CONNECT_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ClusterError(f"{CONNECT_TIMEOUT_ENV}={raw!r} must be > 0 seconds")
    return value


def check_reachable(address: str) -> None:
    """Refuses, within :func:`connect_timeout_s`, a ``HOST:PORT`` (or ``ray://HOST:PORT``)
    address nothing listens on: ``ray.init`` would retry it for minutes. Addresses of
    another form (empty, ``auto``) are left to Ray."""
    if "://" in address and not address.startswith("ray://"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    timeout = connect_timeout_s()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except OSError as e:
            if time.monotonic() + 1.0 >= deadline:
                raise ClusterError(
                    f"--address {address}: no Ray answers there ({e.strerror or e}; tried "
                    f"for {timeout:g} s, {CONNECT_TIMEOUT_ENV} sets how long); is the "
                    "cluster up and the address right?") from None
            time.sleep(1.0)


def check_worker_env(uris: Iterable[str]) -> None:
    """Refuses, before any worker starts, a run over ``gs://`` URIs whose Ray workers
    would not see this driver's storage variables (a connection made without
    :func:`worker_runtime_env`): they would reach real Cloud Storage instead of the
    emulator named here, or wait on it until timing out."""
    import ray

    remote = [u for u in uris if storage.is_remote(str(u))]
    want = storage.worker_env()
    if not remote or not want:
        return
    have = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
    missing = sorted(k for k, v in want.items() if have.get(k) != v)
    if missing:
        raise ClusterError(
            f"{remote[0]}: this driver reaches gs:// with {missing} set, but its Ray job "
            "does not pass them to the workers; connect through "
            "ray_jobs.common.cluster.connect (or ray.init(runtime_env=cluster."
            "worker_runtime_env()))")


def driver_host() -> str:
    """This driver's node address: where xgboost-ray starts its collective tracker."""
    import ray
    return ray.util.get_node_ip_address()


def alive_nodes() -> list[dict]:
    import ray
    return [n for n in ray.nodes() if n.get("Alive")]


def check_placement(bundles: Sequence[Bundle], *, what: str, hint: str = "") -> None:
    """Fails fast when ``bundles`` can never be placed: inside a placement group (a Tune
    trial) each bundle needs one of the group's bundles; else the cluster needs the total
    and, for each bundle, one node that holds all of it."""
    from ray.util import get_current_placement_group

    bundles = [{k: float(v) for k, v in b.items() if v} for b in bundles]
    pg = get_current_placement_group()
    if pg is not None:
        _check_in_group(bundles, list(pg.bundle_specs), what)
    else:
        _check_in_cluster(bundles, what, hint)


def _check_in_group(bundles: list[dict], group: list[dict], what: str) -> None:
    free = list(group)
    for b in sorted(bundles, key=lambda b: -sum(b.values())):
        fit = next((g for g in free if _fits(b, g)), None)
        if fit is None:
            raise PlacementError(f"cannot place {what}: bundles {bundles} do not fit the "
                                 f"enclosing placement group's bundles {group}")
        free.remove(fit)


def _check_in_cluster(bundles: list[dict], what: str, hint: str) -> None:
    import ray

    total, nodes = ray.cluster_resources(), [n["Resources"] for n in alive_nodes()]
    problems = []
    for key in sorted({k for b in bundles for k in b}):
        need = sum(b.get(key, 0.0) for b in bundles)
        if need > total.get(key, 0.0):
            problems.append(f"{need:g} {key} in total but the cluster has "
                            f"{total.get(key, 0.0):g}")
    for b in {tuple(sorted(b.items())): b for b in bundles}.values():
        if not any(_fits(b, n) for n in nodes):
            largest = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in b}
            problems.append(f"{_fmt(b)} on one node but the largest node has {_fmt(largest)}")
    if problems:
        raise PlacementError(
            f"cannot place {what}: asked for " + "; ".join(problems)
            + f". Cluster: {len(nodes)} node(s), resources {_fmt(total)}, available now "
            f"{_fmt(ray.available_resources())}." + (f" {hint}" if hint else ""))


def _fits(bundle: Mapping[str, float], have: Mapping[str, float]) -> bool:
    return all(have.get(k, 0.0) >= v for k, v in bundle.items())


def placement_timeout_message(what: str, timeout_s: float) -> str:
    import ray
    return (f"could not place {what} within {timeout_s:g}s: the cluster has "
            f"{_fmt(ray.cluster_resources())} but only {_fmt(ray.available_resources())} "
            "is free (other jobs hold the rest). Retry later or raise --placement-timeout.")


def _fmt(resources: Mapping[str, float]) -> str:
    keys = [k for k in ("CPU", "GPU", "memory") if k in resources]
    parts = [f"{k}={resources[k] / 2**30:.1f}GiB" if k == "memory" else f"{k}={resources[k]:g}"
             for k in keys]
    return "{" + ", ".join(parts) + "}"
