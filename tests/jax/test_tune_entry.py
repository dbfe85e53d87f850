"""`python -m ray_jobs.tune --job jax` end to end: ASHA over the default search space
(shrunk by a small space file), results table and the best model exported."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.jax.conftest import REPO_ROOT, load_npz

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]


def test_tune_entry_point_with_the_jax_job(ray_cluster, tiny_features, tmp_path):
    pytest.importorskip("ray_jobs.tune.driver")
    base = {"epochs": 2, "eval_batch_size": 256, "vocab_pad_multiple": 32, "patience": 0,
            "hidden_sizes": [8], "embedding_dim": 4, "batch_size": 64}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    space = yaml.safe_load((REPO_ROOT / "ray_jobs/jax/search_space.yaml").read_text())
    space.update(batch_size={"choice": [32, 64]}, embedding_dim={"choice": [2, 4]},
                 hidden_sizes={"choice": [[8], [8, 4]]})  # the same knobs, tiny values
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    out = tmp_path / "tune"
    cmd = [sys.executable, "-m", "ray_jobs.tune", "--job", "jax", "--features",
           str(tiny_features), "--output", str(out), "--num-samples", "2",
           "--grace-period", "1", "--reduction-factor", "2", "--search-space",
           str(tmp_path / "space.yaml"), "--base-config", str(tmp_path / "base.yaml"),
           "--address", ray_cluster.gcs_address]
    p = subprocess.run(cmd, cwd=REPO_ROOT, env=ray_cluster.env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["trials"] == 2 and summary["errored"] == 0
    best = summary["best"]
    assert set(best["config"]) == set(space)
    params = load_npz(out / "best" / "model" / "params.npz")  # a committed jax_model
    assert params["params/deep/embed/cat_0"].shape == (32, best["config"]["embedding_dim"])
    assert np.isfinite(best["eval_loss"])
    assert (out / "results.csv").read_text().count("\n") == 3  # header + 2 trials
