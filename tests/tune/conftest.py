"""Fixtures of the Tune entry point tests (shared Ray cluster: tests/conftest.py)."""
from __future__ import annotations

import pytest

from tests.xgboost.helpers import connect_test_process


@pytest.fixture(scope="module")
def connected(ray_cluster):
    connect_test_process(ray_cluster)
    return ray_cluster
