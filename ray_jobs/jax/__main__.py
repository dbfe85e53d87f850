"""CLI: train the wide-and-deep JAX model on a feature directory.

    python -m ray_jobs.jax --features out/features --output out/jax \\
        [--address ...] [--num-workers N] [--devices-per-worker D] [--epochs E] \\
        [--batch-size B] [--config config.yaml] [--set field=value ...]

Flags override the --config file, which overrides the defaults in config.py. Rerunning
the same command with the same --output resumes from its newest checkpoint.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from mlbatch.artifacts import ArtifactError
from ray_jobs.jax import config as config_mod
from ray_jobs.jax.checkpoint import CheckpointError

FLAG_FIELDS = ("num_workers", "devices_per_worker", "epochs", "batch_size", "platform")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ray_jobs.jax", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", required=True, help="feature job output directory")
    p.add_argument("--output", required=True, help="run directory (created; resumed if it "
                                                   "holds checkpoints)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: in-process "
                                                   "for one worker, RAY_ADDRESS/local else)")
    p.add_argument("--config", default=None, help="YAML or JSON file of config fields")
    p.add_argument("--num-workers", type=int, help="JAX processes, one Ray worker each")
    p.add_argument("--devices-per-worker", type=int, help="devices per process (CPU: fake "
                                                          "devices)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--platform", choices=config_mod.PLATFORMS)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any config field; VALUE is parsed as JSON when it can be")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> config_mod.JaxConfig:
    raw = config_mod.load_file(args.config) if args.config else {}
    for field in FLAG_FIELDS:
        if getattr(args, field) is not None:
            raw[field] = getattr(args, field)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise config_mod.ConfigError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            raw[key] = json.loads(value)
        except json.JSONDecodeError:
            raw[key] = value
    return config_mod.from_dict(raw)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from ray_jobs.jax import driver
    try:
        cfg = build_config(args)
        summary = driver.run(cfg, args.features, args.output, address=args.address)
    except (config_mod.ConfigError, ArtifactError, CheckpointError,
            driver.PlacementError) as e:
        print(f"python -m ray_jobs.jax: error: {e}", file=sys.stderr)
        return 2
    best = {k: v for k, v in summary["best"].items() if k.startswith("eval_")}
    print(json.dumps({"output": args.output, "best_epoch": summary["best_epoch"], **best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
