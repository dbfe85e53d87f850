"""Fixtures of the XGBoost job tests (the shared Ray cluster is in tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ray_jobs.common.synthetic import write_synthetic_features

# Small and quick: 1 actor start per job run dominates; rounds are milliseconds.
FAST = dict(num_boost_round=40, early_stopping_rounds=10, max_actor_restarts=0,
            placement_timeout_s=30.0)


@pytest.fixture(scope="session")
def regression_features(tmp_path_factory) -> Path:
    return write_synthetic_features(tmp_path_factory.mktemp("regression_features"),
                                    n_train=2000, n_eval=500, task="regression", seed=1,
                                    shards=1)  # 1 file: xgboost-ray central loading
