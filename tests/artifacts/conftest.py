"""Fixtures of the artifact end-to-end tests (emulator and Ray cluster: tests/conftest.py)."""
from __future__ import annotations

import pytest

from tests.xgboost.helpers import connect_test_process


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
    connect_test_process(ray_cluster, runtime_env=runtime_env)
    yield ray_cluster
    ray.shutdown()
