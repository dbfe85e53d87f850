"""The one short accelerator check to run on a GPU machine with the GPU environment
(requirements-gpu.lock, or the -gpu image); prints one JSON line and writes it to --json.

    python -m deploy.gpu_check [--rows 1000000] [--rounds 100] [--json bench_out/gpu_check.json]

* JAX: this project's trainer on one GPU at batch 8192 (``benchmarks.jax_bench --platform
  gpu --sections compare``), examples/s;
* XGBoost: the same synthetic features (the flights shape, ``--rows`` train rows), the
  same parameters and rounds, ``device="cuda"`` vs ``device="cpu"`` with 2 threads (the
  CPU figure of docs/xgboost.md); wall seconds of ``xgboost.train``, their ratio, and both
  models' eval AUC (they must agree to about 1e-3: the same algorithm, ``hist``).
Not run on the development machine (it has no GPU): see docs/deploy.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def jax_examples_per_s(batch: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="gpu_check_jax_")) / "jax.json"
    subprocess.run([sys.executable, "-m", "benchmarks.jax_bench", "--platform", "gpu",
                    "--quick", "--batch-size", str(batch), "--sections", "compare",
                    "--json", str(out)], cwd=REPO, check=True)
    return json.loads(out.read_text())


def xgboost_cuda_vs_cpu(rows: int, rounds: int) -> dict:
    import numpy as np
    import xgboost as xgb

    from mlbatch.artifacts.features import load_feature_set
    from mlbatch.metrics import auc
    from ray_jobs.common.synthetic import write_synthetic_features
    from ray_jobs.xgboost.data import read_split

    root = write_synthetic_features(Path(tempfile.mkdtemp(prefix="gpu_check_xgb_")),
                                    n_train=rows, n_eval=rows // 10)
    fs = load_feature_set(root)
    train = [read_split(fs, f) for f in fs.files("train")]
    x_eval, y_eval = map(np.concatenate, zip(*(read_split(fs, f) for f in fs.files("eval"))))
    dtrain = xgb.QuantileDMatrix(np.concatenate([t[0] for t in train]),
                                 np.concatenate([t[1] for t in train]))
    result = {}
    for name, extra in (("cuda", {"device": "cuda"}), ("cpu_2_threads",
                                                       {"device": "cpu", "nthread": 2})):
        params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 8,
                  "eta": 0.1, **extra}
        t0 = time.perf_counter()
        booster = xgb.train(params, dtrain, num_boost_round=rounds)
        seconds = time.perf_counter() - t0
        scores = booster.inplace_predict(x_eval)
        result[name] = {"seconds": round(seconds, 3), "eval_auc": round(auc(y_eval, scores), 5)}
    result["speedup_cuda_vs_cpu"] = round(result["cpu_2_threads"]["seconds"]
                                          / result["cuda"]["seconds"], 2)
    return {"rows": rows, "rounds": rounds, **result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8192)
    p.add_argument("--json", default=str(REPO / "bench_out" / "gpu_check.json"))
    args = p.parse_args(argv)
    report = {"jax": jax_examples_per_s(args.batch_size),
              "xgboost": xgboost_cuda_vs_cpu(args.rows, args.rounds)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
