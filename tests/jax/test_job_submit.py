"""The job as a Ray cluster job: `ray job submit --working-dir <repo> -- python -m ray_jobs.jax`
with two workers of two CPU devices each; the submitted command is the CLI, unchanged."""
import json
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import RAY_BIN
from tests.jax.conftest import REPO_ROOT, load_npz

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]
EXCLUDES = [".venv", ".git", "data", "out", "**/__pycache__", ".pytest_cache", "*.egg-info"]


def test_ray_job_submit_two_workers(ray_cluster, tiny_features, tmp_path):
    out = tmp_path / "run"
    cmd = [RAY_BIN, "job", "submit", "--address", ray_cluster.dashboard_url,
           "--working-dir", str(REPO_ROOT), "--runtime-env-json",
           json.dumps({"excludes": EXCLUDES}), "--",
           "python", "-m", "ray_jobs.jax", "--features", str(tiny_features),
           "--output", str(out), "--num-workers", "2", "--devices-per-worker", "2",
           "--epochs", "2", "--batch-size", "64", "--set", "eval_batch_size=256",
           "--set", "coordinator_host=127.0.0.1", "--set", "hidden_sizes=[8]",
           "--set", "learning_rate=0.01",  # tiny data, 20 steps
           # sharded tables across processes: checkpoints gather them from both workers
           "--set", "shard_embeddings=true", "--set", "shard_min_rows=128"]
    for _ in range(10):  # the head's job agent may not be registered yet: Ray says retry
        p = subprocess.run(cmd, env=ray_cluster.env, capture_output=True, text=True,
                           timeout=300)
        if "No available agent to submit job" not in p.stdout + p.stderr:
            break
        time.sleep(3)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["num_processes"], metrics["num_devices"]) == (2, 4)
    assert [e["epoch"] for e in metrics["history"]] == [0, 1]
    assert metrics["eval_examples"] == 300 and 0.5 < metrics["eval_auc"] <= 1.0
    assert metrics["eval_logloss"] == metrics["best"]["eval_loss"]
    params = load_npz(out / "model" / "params.npz")
    assert params["params/deep/embed/cat_2"].shape == (320, 16)  # whole, not one shard
    assert np.count_nonzero(params["params/deep/embed/cat_2"][300:]) == 0  # padding rows
    assert (out / "curves.png").is_file()
    assert '"best_epoch"' in p.stdout  # the CLI's summary line, from the job's log
