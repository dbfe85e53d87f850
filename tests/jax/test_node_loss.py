"""Losing a node mid-training: the driver restarts the worker group from the newest
checkpoint and finishes with the parameters of an uninterrupted run (1e-5).

A cluster of its own (``pipelines.ray_cluster``: a head node and a worker node, both on
127.0.0.1, 2 CPUs each): the 2 JAX workers are spread one per node, and the worker node
(its raylet and every process it started, the JAX worker among them) is SIGKILLed once
the run has written a few checkpoints. The survivor's gloo all-reduce fails, Ray reports
the other actor dead, and the new group of 2 fits on the head node.
"""
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ray_jobs.jax import checkpoint, driver
from tests.jax.conftest import (assert_params_close, finish, load_npz, run_trainer_subprocess,
                                tiny_config)

pytestmark = pytest.mark.cluster
STEPS = 3 * (320 // 32)  # 3 epochs of 320 rows per data shard, 32 per shard and step


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    import ray
    from pipelines import ray_cluster
    if ray.is_initialized():  # another test's driver connection to the session cluster
        ray.shutdown()
    state = tmp_path_factory.mktemp("two_nodes")
    info = ray_cluster.start_cluster(state, head_cpus=2, worker_cpus=2)
    try:
        yield info
    finally:
        ray.shutdown()
        ray_cluster.stop_cluster(state)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(parents: set[int]) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) in parents:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def kill_worker_node() -> list[str]:
    """SIGKILLs the non-head node's raylet and its children; returns their titles."""
    import ray
    node = next(n for n in ray.nodes()
                if n["Alive"] and "node:__internal_head__" not in n["Resources"])
    flag = f"--raylet_socket_name={node['RayletSocketName']}\0".encode()
    raylet = {int(p.name) for p in Path("/proc").glob("[0-9]*") if flag in _cmdline(int(p.name))}
    assert len(raylet) == 1, raylet
    victims = sorted(raylet) + _children(raylet)
    titles = [_cmdline(p).split(b"\0")[0].decode(errors="replace") for p in victims]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    return titles


def test_losing_the_worker_node_restarts_from_the_last_checkpoint(two_nodes, tiny_features,
                                                                  tmp_path):
    cfg = tiny_config(num_workers=2, data_shards=2, epochs=3, checkpoint_every_steps=1,
                      keep_checkpoints=STEPS, coordinator_host="127.0.0.1", max_restarts=1)
    straight = run_trainer_subprocess(cfg.replace(num_workers=1, devices_per_worker=1),
                                      tiny_features, tmp_path / "straight.npz", steps=STEPS,
                                      wait=False)
    ckpts = checkpoint.CheckpointDir(tmp_path / "run" / "checkpoints", keep=STEPS)
    killed: dict = {}

    def killer():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed.get("stop"):
            if ckpts.steps() and ckpts.steps()[-1] >= 3:
                killed["at"] = ckpts.steps()[-1]
                killed["titles"] = kill_worker_node()
                return
            time.sleep(0.005)
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        summary = driver.run(cfg, tiny_features, tmp_path / "run",
                             address=two_nodes.gcs_address)
    finally:
        killed["stop"] = True
        thread.join(timeout=10)
    finish(straight)
    # the node went down mid-run, with one of the JAX workers on it
    assert 3 <= killed["at"] < STEPS
    assert any("JaxWorker" in t for t in killed["titles"]), killed["titles"]
    assert summary["restarts"] == 1 and summary["epochs_run"] == 3
    assert summary["num_processes"] == 2
    assert ckpts.steps()[-1] == STEPS
    assert_params_close(load_npz(ckpts.path(STEPS)), load_npz(tmp_path / "straight.npz"),
                        atol=1e-5)
    assert (tmp_path / "run" / "artifact.json").is_file()


def test_an_error_in_the_training_code_is_not_a_loss(two_nodes, tiny_features, tmp_path):
    """A worker's own exception fails the job at once (no restart), naming it."""
    cfg = tiny_config(num_workers=2, data_shards=2, epochs=1, coordinator_host="127.0.0.1")
    group = driver.start_group(cfg, str(tiny_features), use_ray=True)
    with pytest.raises(driver.WorkerError, match="failed in no_such_method: AttributeError") \
            as err:
        group.call("no_such_method")
    assert err.value.lost is False and group.actors == []
