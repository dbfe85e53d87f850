"""Hyperparameter search with Ray Tune for a trainable job.

    python -m ray_jobs.tune --job xgboost --features out/features --output out/tune_xgb \\
        --num-samples 20 --search optuna --scheduler asha --max-concurrent 2
    python -m ray_jobs.tune --job xgboost --output out/tune_xgb --resume   # after a crash
    mlbatch-tune --job jax --features out/features --output out/tune_jax   # installed form

Job settings that are not searched go in --base-config (JSON/YAML file) or --set k=v,
e.g. --set num_actors=2 --set num_boost_round=300 --set params.eta=1e-2 (dotted keys
nest; values are YAML 1.2, so 1e-2 is a number).
"""
from __future__ import annotations

import json
import sys

from mlbatch import config as config_files
from mlbatch import errors, logs
from ray_jobs.common import cli

PROG = "python -m ray_jobs.tune"


def _base_config(path: str | None, sets: list[str]) -> dict:
    base = config_files.load_file(path, flag="--base-config") if path else {}
    return config_files.apply_sets(base, sets)


def parse_args(argv: list[str] | None):
    from ray_jobs.tune.driver import JOBS, SCHEDULERS, SEARCHERS, TuneSettings

    p = cli.parser(PROG, __doc__, "docs/DEVELOPING.md (Tune), docs/xgboost.md, docs/jax.md")
    p.add_argument("--job", required=True, choices=JOBS, help="the job whose plug-in to tune")
    p.add_argument("--features", default=None,
                   help="feature directory (required unless --resume)")
    p.add_argument("--output", required=True, help="experiment, results and best model go here")
    p.add_argument("--num-samples", type=int, default=10, help="trials")
    p.add_argument("--search", choices=SEARCHERS, default="random", help="search algorithm")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="asha", help="trial scheduler")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once (None: as many as the cluster holds)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted experiment in --output")
    p.add_argument("--search-space", default=None,
                   help="YAML search space (default: the job's search_space.yaml)")
    p.add_argument("--name", default=None, help="experiment name (default: <job>_tune)")
    p.add_argument("--max-failures", type=int, default=2, help="retries per failing trial")
    p.add_argument("--seed", type=int, default=0, help="searcher seed")
    p.add_argument("--grace-period", type=int, default=5, help="ASHA: min reports per trial")
    p.add_argument("--reduction-factor", type=int, default=3, help="ASHA: keep 1 in this many")
    p.add_argument("--max-t", type=int, default=None,
                   help="ASHA: max reports per trial (default: from the job)")
    p.add_argument("--base-config", default=None, help="JSON/YAML of fixed job settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a base-config key over --base-config (dotted keys nest)")
    p.add_argument("--metric", default=None,
                   help="the reported metric to optimize (default: eval_loss); an unknown "
                        "one is refused with the list the job reports, e.g. eval_accuracy, "
                        "eval_auc_ovr_macro (jax), eval-mlogloss (xgboost)")
    p.add_argument("--mode", choices=("min", "max"), default=None,
                   help="minimize or maximize --metric (required with a --metric other "
                        "than eval_loss)")
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
        base_config=_base_config(a.base_config, a.set), address=a.address,
        metric=a.metric, mode=a.mode)


def run(argv: list[str] | None = None) -> dict:
    """The experiment; raises TuneSetupError, SearchSpaceError, ConfigError, feature
    contract errors (all ValueError) or ClusterError for what a user must fix."""
    from ray_jobs.tune import driver
    return driver.run(parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 (naming the problem) for usage and setup errors."""
    cli.prefer_loopback()
    try:
        summary = run(argv)
    except errors.CAUGHT as e:  # config, feature contract, checkpoint, placement: a UsageError
        return errors.exit_code(PROG, e)
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
