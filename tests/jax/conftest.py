"""Fixtures for the JAX job's tests: a tiny feature directory and a tiny config."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ray_jobs.common.synthetic import write_synthetic_features
from ray_jobs.jax.config import JaxConfig, from_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
# One table (300 ids -> 320 padded rows) is big enough to be sharded in FSDP tests.
CARDINALITIES = (5, 40, 300)


def tiny_config(**changes) -> JaxConfig:
    """The production config, shrunk: small model, small batches, few epochs."""
    base = dict(epochs=2, batch_size=64, eval_batch_size=256, embedding_dim=4,
                hidden_sizes=[16, 8], learning_rate=0.01, l2_wide=1e-4, l2_deep=1e-4,
                patience=0, vocab_pad_multiple=32, shard_min_rows=128, log_every_steps=4)
    return from_dict({**base, **changes})


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory) -> Path:
    """640 train / 300 eval rows, 4 numeric + 3 categorical features, binary label."""
    return write_synthetic_features(tmp_path_factory.mktemp("tiny_features"), n_train=640,
                                    n_eval=300, n_numeric=4, cardinalities=CARDINALITIES,
                                    shards=3, seed=1)


def run_trainer_subprocess(config: JaxConfig, features: Path, out: Path, *, steps: int,
                           wait: bool = True):
    """Trains ``steps`` steps in a fresh process (its own JAX device count); see
    tests/jax/train_steps_script.py. Returns the Popen when ``wait`` is False."""
    cmd = [sys.executable, "-m", "tests.jax.train_steps_script", json.dumps(config.to_dict()),
           str(features), str(out), str(steps)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return finish(proc) if wait else proc


def finish(proc) -> dict:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-4000:]
    return json.loads(out.strip().splitlines()[-1])


def load_npz(path: Path, prefix: str = "params/") -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k.startswith(prefix)}


def assert_params_close(a: dict, b: dict, atol: float) -> None:
    assert sorted(a) == sorted(b)
    worst = max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)
    assert worst <= atol, f"max |diff| {worst:.3g} > {atol}"
