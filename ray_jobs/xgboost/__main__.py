"""Distributed XGBoost (Ray Train V2 XGBoostTrainer) on the feature job's Parquet output.

    python -m ray_jobs.xgboost --features out/features --output out/xgboost
    mlbatch-xgboost --features out/features --output out/xgboost   # the same, installed
    ray job submit --working-dir . -- python -m ray_jobs.xgboost --features ... --output ...
"""
from __future__ import annotations

import json
import sys

from mlbatch import config as config_files
from mlbatch import errors, logs
from mlbatch.metrics import EARLY_STOPPING_METRICS
from ray_jobs.common import cli
from ray_jobs.xgboost.config import ConfigError, XGBoostConfig, load_params_file

PROG = "python -m ray_jobs.xgboost"


def parse_args(argv: list[str] | None) -> tuple[XGBoostConfig, bool]:
    p = cli.parser(PROG, __doc__, "docs/xgboost.md")
    p.add_argument("--features", required=True, help="feature job output directory")
    p.add_argument("--output", required=True, help="directory for model.json, metrics.json ...")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a committed model (or other files) in --output")
    p.add_argument("--address", default=None,
                   help="Ray address ('auto' or host:port); default: 'auto' when RAY_ADDRESS "
                        "is set (e.g. under `ray job submit`), else a new local Ray")
    p.add_argument("--num-actors", type=int, default=None,
                   help="training workers (None: on each node one per CPU, at most 8)")
    p.add_argument("--cpus-per-actor", type=int, default=None,
                   help="CPUs (= XGBoost threads) per worker (None: the node's CPUs shared out "
                        "over its workers)")
    p.add_argument("--gpus-per-actor", type=int, default=0,
                   help="GPUs per worker; > 0 trains with XGBoost's GPU hist method (device=cuda)")
    p.add_argument("--num-boost-round", type=int, default=500, help="boosting rounds at most")
    p.add_argument("--early-stopping-rounds", type=int, default=20,
                   help="stop when the early-stopping metric has not improved for this many "
                        "rounds (0: off)")
    p.add_argument("--early-stopping-metric", choices=EARLY_STOPPING_METRICS,
                   default="eval_loss",
                   help="eval_loss: the task's loss in label units (dollars for a log1p "
                        "label), as the JAX job; objective_loss: XGBoost's in the model's "
                        "space (log units)")
    p.add_argument("--params", default=None,
                   help="JSON/YAML file of XGBoost booster params (eta, max_depth, ...)")
    p.add_argument("--set", action="append", default=[], metavar="params.KEY=VALUE",
                   help="one booster param, over the --params file (e.g. params.eta=1e-2)")
    p.add_argument("--max-actor-restarts", type=int, default=2,
                   help="restarts of the worker group after a worker failure (from the last "
                        "checkpoint)")
    p.add_argument("--checkpoint-frequency", type=int, default=5,
                   help="rounds between reports, each with a checkpoint (used after a failure)")
    p.add_argument("--placement-timeout", type=float, default=60.0,
                   help="seconds to wait for free resources on a busy cluster")
    p.add_argument("--no-data-check", action="store_true",
                   help="skip the full NaN/inf/label scan (schema checks still run)")
    a = p.parse_args(argv)
    return XGBoostConfig(
        features=a.features, output=a.output, address=a.address, num_actors=a.num_actors,
        cpus_per_actor=a.cpus_per_actor, gpus_per_actor=a.gpus_per_actor,
        num_boost_round=a.num_boost_round, early_stopping_rounds=a.early_stopping_rounds or None,
        early_stopping_metric=a.early_stopping_metric, params=_params(a.params, a.set),
        max_actor_restarts=a.max_actor_restarts, checkpoint_frequency=a.checkpoint_frequency,
        placement_timeout_s=a.placement_timeout, check_data=not a.no_data_check), a.overwrite


def _params(path: str | None, sets: list[str]) -> dict:
    doc = config_files.apply_sets({"params": load_params_file(path) if path else {}}, sets)
    unknown = sorted(set(doc) - {"params"})
    if unknown:
        raise ConfigError(f"--set {unknown[0]}...: only params.KEY=VALUE is settable here")
    if not isinstance(doc["params"], dict):
        raise ConfigError("--set params=...: set one parameter, params.KEY=VALUE")
    return doc["params"]


def run(argv: list[str] | None = None) -> dict:
    """The job; raises ConfigError, FeatureContractError, FeatureDataError or ClusterError
    (PlacementError) for what a user must fix."""
    from ray_jobs.xgboost import driver
    config, overwrite = parse_args(argv)
    return driver.run(config, overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 (naming the problem) for usage, config, feature
    and placement errors."""
    cli.prefer_loopback()
    try:
        doc = run(argv)
    except errors.CAUGHT as e:  # config, feature contract, checkpoint, placement: a UsageError
        return errors.exit_code(PROG, e)
    print(json.dumps({"eval": doc["eval"], "best_round": doc["best_round"]}))
    return 0


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
