"""Connecting to Ray, choosing the actor layout, and checking it can be placed.

xgboost-ray (and Ray Train) wait on a placement group that can never be created when a
run asks for more than the cluster has; users report such runs hanging. Here the request
is compared with the cluster before any actor starts, and the remaining wait (a busy
cluster) is bounded by a timeout; both fail with what was asked and what there is.
"""
from __future__ import annotations

import logging
import os

import ray

from ray_jobs.xgboost.config import Layout

logger = logging.getLogger(__name__)


class PlacementError(RuntimeError):
    """The requested actors cannot be placed on this cluster (message: asked vs. have)."""


def connect(address: str | None) -> None:
    """``address``, else ``auto`` when RAY_ADDRESS names a cluster (as under
    ``ray job submit``), else a new local single-node Ray bound to 127.0.0.1."""
    if ray.is_initialized():
        return
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = "auto"
    if address is None:
        logger.info("no --address and no RAY_ADDRESS: starting a local Ray on 127.0.0.1")
        # A job-private single-node Ray stays on loopback (Ray's own macOS/Windows mode):
        # ray.init(_node_ip_address="127.0.0.1") is rewritten to the host's interface IP,
        # which is also where xgboost-ray's Rabit tracker would then listen.
        from ray._private import ray_constants
        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def _alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def default_layout(gpus_per_actor: int = 0) -> Layout:
    """One actor per node, each with all of its node's CPUs (the smallest node's count).

    Rationale (measured, docs/xgboost.md): XGBoost's hist method scales over threads
    inside one process much better than over actors, which pay an allreduce per tree
    level and a second copy of the quantile sketch; so use threads within a node and
    actors only across nodes.
    """
    nodes = [n for n in _alive_nodes() if n.get("Resources", {}).get("CPU", 0) >= 1]
    if gpus_per_actor:
        nodes = [n for n in nodes if n["Resources"].get("GPU", 0) >= gpus_per_actor]
    if not nodes:
        raise PlacementError(f"no alive node with CPUs{' and GPUs' if gpus_per_actor else ''}"
                             f"; cluster resources: {ray.cluster_resources()}")
    cpus = min(int(n["Resources"]["CPU"]) for n in nodes)
    return Layout(num_actors=len(nodes), cpus_per_actor=cpus, gpus_per_actor=gpus_per_actor)


def check_placement(layout: Layout, timeout_s: float) -> None:
    """Fails fast when the cluster can never hold the actors; bounds the wait otherwise."""
    total = ray.cluster_resources()
    have_cpu, have_gpu = total.get("CPU", 0.0), total.get("GPU", 0.0)
    asked = layout.describe()
    node_max_cpu = max((n["Resources"].get("CPU", 0.0) for n in _alive_nodes()), default=0.0)
    node_max_gpu = max((n["Resources"].get("GPU", 0.0) for n in _alive_nodes()), default=0.0)
    problems = []
    if layout.total_cpus > have_cpu:
        problems.append(f"{layout.total_cpus} CPUs in total but the cluster has {have_cpu:g}")
    if layout.total_gpus > have_gpu:
        problems.append(f"{layout.total_gpus} GPUs in total but the cluster has {have_gpu:g}")
    if layout.cpus_per_actor > node_max_cpu:
        problems.append(f"{layout.cpus_per_actor} CPUs on one node but the largest node "
                        f"has {node_max_cpu:g}")
    if layout.gpus_per_actor > node_max_gpu:
        problems.append(f"{layout.gpus_per_actor} GPUs on one node but the largest node "
                        f"has {node_max_gpu:g}")
    if problems:
        raise PlacementError(
            f"cannot place {asked}: asked for " + "; ".join(problems)
            + f". Cluster: {len(_alive_nodes())} node(s), resources {_fmt(total)}, "
            f"available now {_fmt(ray.available_resources())}. Lower --num-actors / "
            "--cpus-per-actor / --gpus-per-actor or add nodes.")
    # Enough in total: xgboost-ray waits for a placement group; bound that wait.
    os.environ["RXGB_PLACEMENT_GROUP_TIMEOUT_S"] = str(max(1, int(timeout_s)))


def placement_timeout_message(layout: Layout, timeout_s: float) -> str:
    return (f"could not place {layout.describe()} within {timeout_s:g}s: the cluster has "
            f"{_fmt(ray.cluster_resources())} but only {_fmt(ray.available_resources())} "
            "is free (other jobs hold the rest). Retry later or raise --placement-timeout.")


def _fmt(resources: dict) -> str:
    keys = [k for k in ("CPU", "GPU", "memory") if k in resources]
    parts = [f"{k}={resources[k] / 2**30:.1f}GiB" if k == "memory" else f"{k}={resources[k]:g}"
             for k in keys]
    return "{" + ", ".join(parts) + "}"
