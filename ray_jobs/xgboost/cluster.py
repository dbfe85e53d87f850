"""The XGBoost job's worker layout: the default one, its check, its bounded wait.

Connecting and the placement check itself are shared by every Ray job
(``ray_jobs.common.cluster``); here is what the XGBoost job adds: how many training
workers of how many CPUs by default, and the bound on the wait for them on a busy cluster.
"""
from __future__ import annotations

import logging

from ray_jobs.common import cluster
from ray_jobs.xgboost.config import Layout

logger = logging.getLogger(__name__)

# Actors per node in the default layout: one per CPU up to this many; beyond it the
# node's CPUs are shared out as threads (docs/xgboost.md, "Default layout").
MAX_ACTORS_PER_NODE = 8
LAYOUT_HINT = "Lower --num-actors / --cpus-per-actor / --gpus-per-actor or add nodes."


def default_layout(gpus_per_actor: int = 0, cpus_per_actor: int | None = None) -> Layout:
    """On every node: one actor per CPU (or per ``cpus_per_actor`` CPUs when given), at
    most MAX_ACTORS_PER_NODE; with GPUs one per ``gpus_per_actor`` GPUs. Without
    ``cpus_per_actor`` each actor gets an equal share of the smallest node's CPUs.

    Rationale (docs/xgboost.md): each training worker reads and converts its own shard of
    the Parquet, so several single-threaded actors load in parallel where one actor with
    several threads loads serially; the histogram allreduce per tree level is cheap next
    to that on one machine. The cap bounds the per-actor memory (a Ray worker process,
    its shard and its quantile sketch) on large nodes.
    """
    nodes = [n["Resources"] for n in cluster.alive_nodes()
             if n.get("Resources", {}).get("CPU", 0) >= 1]
    if gpus_per_actor:
        nodes = [n for n in nodes if n.get("GPU", 0) >= gpus_per_actor]
    if not nodes:
        need = f"1 CPU and {gpus_per_actor} GPU(s)" if gpus_per_actor else "1 CPU"
        raise cluster.PlacementError(f"no alive node has {need} for one actor")
    per_node = [_actors_on(n, gpus_per_actor, cpus_per_actor) for n in nodes]
    cpus = cpus_per_actor or min(int(n["CPU"]) // a for n, a in zip(nodes, per_node))
    return Layout(num_actors=sum(per_node), cpus_per_actor=max(1, cpus),
                  gpus_per_actor=gpus_per_actor)


def _actors_on(node: dict, gpus_per_actor: int, cpus_per_actor: int | None) -> int:
    if gpus_per_actor:
        return max(1, int(node.get("GPU", 0)) // gpus_per_actor)
    return max(1, min(int(node["CPU"]) // (cpus_per_actor or 1), MAX_ACTORS_PER_NODE))


def bundles(layout: Layout) -> list[dict[str, float]]:
    actor = {"CPU": float(layout.cpus_per_actor), "GPU": float(layout.gpus_per_actor)}
    return [dict(actor) for _ in range(layout.num_actors)]


def check_layout(layout: Layout) -> None:
    """Fails fast (PlacementError, asked vs. have) when the cluster can never hold it."""
    cluster.check_placement(bundles(layout), what=layout.describe(), hint=LAYOUT_HINT)


def wait_for_resources(layout: Layout, seconds: float) -> None:
    """Waits at most ``seconds`` until the layout's bundles can be reserved together,
    then frees them again for Ray Train's own worker group (which would otherwise wait on
    a busy cluster for RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S and retry). Raises
    TimeoutError when they cannot be reserved in time."""
    from ray.util.placement_group import placement_group, remove_placement_group

    pg = placement_group(bundles(layout), strategy="PACK")
    try:
        if not pg.wait(timeout_seconds=max(1, int(seconds))):
            raise TimeoutError(f"placement group not ready within {seconds:g}s")
    finally:
        remove_placement_group(pg)
