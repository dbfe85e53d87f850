"""Hyperparameter search with Ray Tune for a trainable job.

    python -m ray_jobs.tune --job xgboost --features out/features --output out/tune_xgb \\
        --num-samples 20 --search optuna --scheduler asha --max-concurrent 2
    python -m ray_jobs.tune --job xgboost --output out/tune_xgb --resume   # after a crash

Job settings that are not searched go in --base-config (JSON/YAML file) or --set k=v,
e.g. --set num_actors=2 --set num_boost_round=300 --set params.max_bin=128.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ray_jobs.tune.driver import JOBS, SCHEDULERS, SEARCHERS, TuneSettings


def _base_config(path: str | None, sets: list[str]) -> dict:
    import yaml

    base: dict = {}
    if path:
        base = yaml.safe_load(Path(path).read_text()) or {}  # JSON is YAML
        if not isinstance(base, dict):
            raise SystemExit(f"--base-config {path}: expected a mapping")
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected key=value")
        *parents, leaf = key.split(".")
        node = base
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw)
    return base


def parse_args(argv: list[str] | None) -> TuneSettings:
    p = argparse.ArgumentParser(prog="python -m ray_jobs.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", required=True, choices=JOBS)
    p.add_argument("--features", default=None,
                   help="feature directory (required unless --resume)")
    p.add_argument("--output", required=True, help="experiment, results and best model go here")
    p.add_argument("--num-samples", type=int, default=10)
    p.add_argument("--search", choices=SEARCHERS, default="random")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="asha")
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted experiment in --output")
    p.add_argument("--search-space", default=None,
                   help="YAML search space (default: the job's search_space.yaml)")
    p.add_argument("--name", default=None, help="experiment name (default: <job>_tune)")
    p.add_argument("--max-failures", type=int, default=2, help="retries per failing trial")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grace-period", type=int, default=5, help="ASHA: min reports per trial")
    p.add_argument("--reduction-factor", type=int, default=3)
    p.add_argument("--max-t", type=int, default=None,
                   help="ASHA: max reports per trial (default: from the job)")
    p.add_argument("--base-config", default=None, help="JSON/YAML of fixed job settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--address", default=None,
                   help="Ray address (default: 'auto' if RAY_ADDRESS is set, else local)")
    a = p.parse_args(argv)
    if not a.resume and not a.features:
        p.error("--features is required (unless --resume)")
    return TuneSettings(
        job=a.job, features=a.features or "", output=a.output, num_samples=a.num_samples,
        search=a.search, scheduler=a.scheduler, max_concurrent=a.max_concurrent,
        resume=a.resume, search_space=a.search_space, name=a.name,
        max_failures=a.max_failures, seed=a.seed, grace_period=a.grace_period,
        reduction_factor=a.reduction_factor, max_t=a.max_t,
        base_config=_base_config(a.base_config, a.set), address=a.address)


def run(argv: list[str] | None = None) -> dict:
    from ray_jobs.tune import driver
    return driver.run(parse_args(argv))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run()
    except ValueError as e:  # setup, search-space, config and feature-contract errors
        logging.getLogger("ray_jobs.tune").error("%s: %s", type(e).__name__, e)
        sys.exit(2)
    print(json.dumps(summary, default=str))
