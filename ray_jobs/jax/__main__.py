"""CLI: train the wide-and-deep JAX model on a feature directory.

    python -m ray_jobs.jax --features out/features --output out/jax \\
        [--address ...] [--num-workers N] [--devices-per-worker D] [--epochs E] \\
        [--batch-size B] [--config config.yaml] [--set field=value ...]

Flags override --set, which overrides the --config file, which overrides the defaults
in config.py (every field: docs/jax.md). Rerunning the same command with the same
--output resumes from its newest checkpoint. Installed, ``mlbatch-jax`` is the same.
"""
from __future__ import annotations

import argparse
import json
import sys

from mlbatch import config as config_files
from mlbatch import errors, logs
from mlbatch.metrics import EARLY_STOPPING_METRICS
from ray_jobs.common import cli
from ray_jobs.jax import config as config_mod

PROG = "python -m ray_jobs.jax"
FLAG_FIELDS = ("num_workers", "devices_per_worker", "epochs", "batch_size", "platform",
               "early_stopping_metric")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.parser(PROG, __doc__, "docs/jax.md")
    p.add_argument("--features", required=True, help="feature job output directory")
    p.add_argument("--output", required=True, help="run directory (created; resumed if it "
                                                   "holds checkpoints)")
    p.add_argument("--address", default=None, help="Ray cluster address (None: in-process "
                                                   "for one worker, RAY_ADDRESS/local else)")
    p.add_argument("--config", default=None, help="YAML or JSON file of config fields")
    defaults = config_mod.JaxConfig()
    p.add_argument("--num-workers", type=int, help="JAX processes, one Ray worker each "
                   f"(config default {defaults.num_workers})")
    p.add_argument("--devices-per-worker", type=int, help="devices per process (None: CPU "
                                                          "1, accelerators all visible)")
    p.add_argument("--epochs", type=int, help=f"(config default {defaults.epochs})")
    p.add_argument("--batch-size", type=int,
                   help=f"global batch size (config default {defaults.batch_size})")
    p.add_argument("--platform", choices=config_mod.PLATFORMS, help="None: JAX's default")
    p.add_argument("--early-stopping-metric", choices=EARLY_STOPPING_METRICS,
                   help="eval_loss: the task's loss in label units (dollars for a log1p "
                        "label), as the XGBoost job; objective_loss: in the model's space "
                        f"(config default {defaults.early_stopping_metric}; patience: --set)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any config field; VALUE is YAML (1e-3 is a number, [64, 32] a list)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> config_mod.JaxConfig:
    raw = config_mod.load_file(args.config) if args.config else {}
    raw = config_files.apply_sets(raw, args.set)
    for field in FLAG_FIELDS:
        if getattr(args, field) is not None:
            raw[field] = getattr(args, field)
    return config_mod.from_dict(raw)


def run(argv: list[str] | None = None) -> dict:
    """The job; raises ConfigError, FeatureContractError, CheckpointError, ClusterError
    (PlacementError) for what a user must fix, WorkerError when a worker fails."""
    from ray_jobs.jax import driver
    args = parse_args(argv)
    summary = driver.run(build_config(args), args.features, args.output, address=args.address)
    return {"output": args.output, **summary}


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 (naming the problem) for usage, config, feature
    (NaN/inf values, a one-class label), checkpoint and placement errors, 1 (naming the
    epoch) when the loss diverges."""
    cli.prefer_loopback()
    try:
        summary = run(argv)
    except errors.CAUGHT as e:  # config, feature contract, checkpoint, placement: a UsageError
        return errors.exit_code(PROG, e)
    best = {k: v for k, v in summary["best"].items() if k.startswith("eval_")}
    print(json.dumps({"output": summary["output"], "best_epoch": summary["best_epoch"], **best}))
    return 0


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
