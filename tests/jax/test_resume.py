"""Kill the job mid-training (SIGKILL), rerun the same command: it resumes from the last
checkpoint and ends with exactly the parameters of an uninterrupted run."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import yaml

from ray_jobs.jax import checkpoint
from tests.jax.conftest import REPO_ROOT, load_npz

CONFIG = {"epochs": 2, "batch_size": 32, "eval_batch_size": 128, "embedding_dim": 4,
          "hidden_sizes": [16, 8], "learning_rate": 0.01, "l2_wide": 1e-4, "l2_deep": 1e-4,
          "vocab_pad_multiple": 32, "patience": 0, "checkpoint_every_steps": 3,
          "optimizer": "adamw", "schedule": "warmup_cosine", "warmup_steps": 5}
TOTAL_STEPS = 2 * (640 // 32)


def job(features, output, config_file):
    cmd = [sys.executable, "-m", "ray_jobs.jax", "--features", str(features), "--output",
           str(output), "--config", str(config_file)]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))


def test_killed_job_resumes_to_the_same_parameters(tiny_features, tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(CONFIG))
    straight = job(tiny_features, tmp_path / "straight", config_file)
    victim = job(tiny_features, tmp_path / "killed", config_file)
    ckpts = checkpoint.CheckpointDir(tmp_path / "killed" / "checkpoints", keep=3)
    deadline = time.monotonic() + 180
    while not ckpts.steps() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    killed_at = ckpts.steps()[-1]
    assert 0 < killed_at < TOTAL_STEPS and not (tmp_path / "killed" / "metrics.json").exists()

    rerun = job(tiny_features, tmp_path / "killed", config_file)
    out, _ = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, out[-3000:]
    resumed = int(re.search(r"resumed from step (\d+)", out).group(1))
    assert killed_at <= resumed < TOTAL_STEPS
    out, _ = straight.communicate(timeout=180)
    assert straight.returncode == 0, out[-3000:]

    final = f"checkpoints/ckpt-{TOTAL_STEPS:09d}.npz"
    a = load_npz(tmp_path / "straight" / final, prefix="")
    b = load_npz(tmp_path / "killed" / final, prefix="")
    assert sorted(a) == sorted(b) and any(k.startswith("opt_state/") for k in a)
    for k in a:
        if k != checkpoint.META_KEY:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    m_a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    m_b = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    strip = lambda h: [{k: v for k, v in e.items() if k != "examples_per_s"} for e in h]  # noqa
    assert strip(m_a["history"]) == strip(m_b["history"]) and len(m_a["history"]) == 2
    assert 0.5 < m_b["eval_auc"] <= 1.0
    assert (tmp_path / "killed" / "curves.png").stat().st_size > 1000
    assert list((tmp_path / "killed" / "tensorboard").glob("events.out.tfevents.*"))
    assert np.array_equal(load_npz(tmp_path / "straight" / "model" / "params.npz")
                          ["params/deep/embed/cat_2"],
                          load_npz(tmp_path / "killed" / "model" / "params.npz")
                          ["params/deep/embed/cat_2"])
