"""Test-only XGBoost callbacks (they run inside the Ray Train training workers)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import xgboost as xgb
from xgboost.callback import TrainingCallback

from mlbatch.artifacts.features import load_feature_set
from ray_jobs.xgboost.data import read_split


class SlowRoundsAndReportPid(TrainingCallback):
    """Slows every round down (so a test can act mid-training), appends each actor's pid
    to ``starts`` when it starts training, and writes rank ``rank``'s pid to ``target``
    once it reaches round ``at_round`` (only the first time)."""

    def __init__(self, target: Path, starts: Path, at_round: int, rank: int = 1,
                 delay_s: float = 0.05):
        self.target, self.starts, self.at_round = str(target), str(starts), at_round
        self.rank, self.delay_s = rank, delay_s

    def before_training(self, model):
        with open(self.starts, "a") as f:
            f.write(f"{os.getpid()}\n")
        return model

    def after_iteration(self, model, epoch, evals_log):
        from xgboost import collective
        time.sleep(self.delay_s)
        if (collective.get_rank() == self.rank and model.num_boosted_rounds() >= self.at_round
                and not os.path.exists(self.target)):
            tmp = self.target + ".tmp"
            Path(tmp).write_text(str(os.getpid()))
            os.replace(tmp, self.target)
        return False


def connect_test_process(cluster, runtime_env: dict | None = None) -> None:
    """``ray.init`` against the shared test cluster (with the job's ``runtime_env``).

    Ray 2.60 caches the auth token state when ``ray`` is first imported; a test module
    that imports ray (or this project's jobs) at collection time, before the session
    fixture set RAY_AUTH_TOKEN, would otherwise connect without a token and be refused.
    """
    import ray
    if ray.is_initialized():
        return
    from ray._raylet import AuthenticationTokenLoader, Config
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    ray.init(address=cluster.gcs_address, log_to_driver=False, runtime_env=runtime_env)


def predict_eval(model_path: Path, features: Path):
    fs = load_feature_set(features)
    booster = xgb.Booster(model_file=str(model_path))
    parts = [read_split(fs, p) for p in fs.files("eval")]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    dm = xgb.DMatrix(x, label=y, feature_names=fs.names)
    return fs, booster, booster.predict(dm), y
