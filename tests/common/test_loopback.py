"""Local runs stay on loopback: a job without --address starts its own Ray, and its node,
GCS and dashboard addresses, XGBoost's collective tracker (Ray Train) and the jax.distributed
coordinator are all 127.0.0.1. The jobs run as a user runs them (a subprocess), in an
environment without the test session's loopback setting, so the job's own entry point
has to provide it."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ray_jobs.common.cluster import LOCAL_ONLY_ENV, is_loopback
from ray_jobs.common.synthetic import write_synthetic_features
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
LOCAL_RAY = re.compile(r"local Ray on loopback: node (\S+), GCS (\S+), dashboard (\S+)")


def _run_job(*args: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in (LOCAL_ONLY_ENV, "RAY_ADDRESS") and not k.startswith("RAY_AUTH")}
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, text=True,
                          capture_output=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stderr


def _host(address: str) -> str:
    return re.sub(r"^\w+://", "", address).rsplit(":", 1)[0]


def _assert_local_ray_on_loopback(log: str) -> None:
    node, gcs, dashboard = LOCAL_RAY.search(log).groups()
    assert is_loopback(node) and is_loopback(_host(gcs)), (node, gcs)
    assert dashboard == "off" or is_loopback(_host(dashboard)), dashboard


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return write_synthetic_features(tmp_path_factory.mktemp("loopback_features"), n_train=640,
                                    n_eval=256, n_numeric=4, cardinalities=(5, 7), shards=2,
                                    seed=3)


def test_xgboost_local_run_and_its_tracker_are_on_loopback(features, tmp_path):
    """Ray Train's XGBoost backend starts XGBoost's collective tracker on the Train
    controller's node address (``host_ip=train_driver_ip``), the node asserted loopback
    here; the job trains to the end with two workers joined through it."""
    log = _run_job("ray_jobs.xgboost", "--features", str(features), "--output",
                   str(tmp_path / "xgb"), "--num-actors", "2", "--cpus-per-actor", "1",
                   "--num-boost-round", "3", "--early-stopping-rounds", "0",
                   "--max-actor-restarts", "0")
    _assert_local_ray_on_loopback(log)
    assert (tmp_path / "xgb" / "artifact.json").exists()


def test_jax_local_run_hands_its_workers_a_loopback_coordinator(features, tmp_path):
    log = _run_job("ray_jobs.jax", "--features", str(features), "--output",
                   str(tmp_path / "jax"), "--num-workers", "2", "--epochs", "1",
                   "--batch-size", "64", "--set", "eval_batch_size=128",
                   "--set", "hidden_sizes=[8]", "--set", "embedding_dim=2")
    _assert_local_ray_on_loopback(log)
    (coordinator,) = re.findall(r"starting 2 workers \(coordinator (\S+)\)", log)
    assert _host(coordinator) == "127.0.0.1" and int(coordinator.rsplit(":", 1)[1]) > 0


def test_a_local_ray_that_would_not_be_on_loopback_is_refused():
    env = {k: v for k, v in os.environ.items() if k not in (LOCAL_ONLY_ENV, "RAY_ADDRESS")}
    code = ("from ray_jobs.common import cluster\n"
            "try:\n    cluster.connect(None)\n"
            "except cluster.ClusterError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, text=True,
                         capture_output=True, timeout=120).stdout
    assert out.startswith("refused: a local Ray here would listen on ")
    assert f"set {LOCAL_ONLY_ENV}=0 before Ray is imported" in out
