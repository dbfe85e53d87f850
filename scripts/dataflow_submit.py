"""Submits the Beam steps of a pipeline to Dataflow (DataflowRunner), one job per step.

python -m scripts.dataflow_submit pipelines/flights.yaml [--steps features cooccurrence]
    [--run-dir gs://B/runs/flights] [--data-root gs://B/src] [--job-suffix -001]
    [--dry-run DIR] [any Beam / Dataflow flag: --machine_type n2-standard-8
    --max_num_workers 20 --network N --subnetwork regions/R/subnetworks/S
    --no_use_public_ips --dataflow_service_options enable_prime ...]

Settings come from the environment and are checked before anything is submitted:
GOOGLE_CLOUD_PROJECT, REGION, BUCKET (gs://bucket[/prefix]), optional SERVICE_ACCOUNT
(the workers' service account e-mail), SDK_CONTAINER_IMAGE (workers' image; default:
this version's image, REGION-docker.pkg.dev/PROJECT/mlbatch/mlbatch:VERSION, built by
`make image`; SDK_CONTAINER_IMAGE=sdist: Beam ships this package with --setup_file and
each worker pip-installs its dependencies), DATAFLOW_TEMP (default BUCKET/tmp; each job
keeps its files in a directory of its own under it) and DATAFLOW_OPTIONS (flags for
every job). Flags this script does not declare are Beam's: checked by Beam's own
option classes (unknown ones and bad values refused, naming them) and passed to every job.
Outputs go to RUN_DIR/<step> (default BUCKET/runs/<pipeline>); relative raw paths of
the pipeline file are read under --data-root (upload data/ there first; schemas/ is read
here, where each job is launched, so run this from the repository root).
Steps run in pipeline order, each waiting for its job; a step that reads a Ray step's
output needs that output in RUN_DIR first (scripts/ray_cluster.py submit).

--dry-run DIR submits nothing: each job is built with Beam's --dry_run and its Dataflow
job description written to DIR/<step>.json, the command lines to DIR/commands.json
(local raw inputs are allowed then). Exit status: 0 all submitted jobs succeeded, 2 a
setting or the pipeline file is wrong (every problem named), else the failing job's.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

from mlbatch import logs
from pipelines import remote
from pipelines.spec import SpecError, load_pipeline

LOGGER = logging.getLogger("scripts.dataflow_submit")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", help="the pipeline file")
    parser.add_argument("--steps", nargs="+", help="only these Beam steps (default: all)")
    parser.add_argument("--run-dir", help="where the steps' outputs go (gs://)")
    parser.add_argument("--data-root", help="prefix of the pipeline file's relative raw paths")
    parser.add_argument("--job-suffix", default="", help="appended to every Dataflow job name")
    parser.add_argument("--dry-run", metavar="DIR", help="write the job descriptions to DIR")
    args, args.beam_flags = parser.parse_known_args(argv)
    return args


def commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(step, command line) of every job to submit; raises on every bad setting."""
    pipeline = load_pipeline(args.pipeline)
    cfg = remote.CloudConfig.from_env()
    problems = remote.dataflow_option_problems(args.beam_flags)
    if problems:
        raise remote.RemoteConfigError("cannot submit to Dataflow:\n  " + "\n  ".join(problems))
    cfg = dataclasses.replace(cfg, options=(*cfg.options, *args.beam_flags))
    steps = remote.beam_steps(pipeline, args.steps)
    run_dir = args.run_dir or f"{cfg.bucket.rstrip('/')}/runs/{pipeline.name}"
    problems = [] if run_dir.startswith("gs://") else [f"--run-dir {run_dir!r} is no gs:// URI"]
    if not args.dry_run:
        problems += [f"{p}: Dataflow workers read gs:// only (upload it and pass --data-root "
                     "gs://...)" for p in remote.local_raw_inputs(steps, args.data_root)]
    if problems:
        raise remote.RemoteConfigError("cannot submit to Dataflow:\n  " + "\n  ".join(problems))
    out_dir = Path(args.dry_run).resolve() if args.dry_run else None
    data_root = args.data_root or (str(Path.cwd()) if args.dry_run else None)
    return [(s.name, remote.dataflow_command(
        pipeline, s, cfg, run_dir, data_root=data_root, job_suffix=args.job_suffix,
        dry_run_file=str(out_dir / f"{s.name}.json") if out_dir else None,
        python=sys.executable)) for s in steps]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        jobs = commands(args)
    except (SpecError, remote.RemoteConfigError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    if args.dry_run:
        Path(args.dry_run).mkdir(parents=True, exist_ok=True)
        (Path(args.dry_run) / "commands.json").write_text(json.dumps(dict(jobs), indent=1))
    for step, argv in jobs:
        LOGGER.info("%s %s: %s", "dry run" if args.dry_run else "submitting", step,
                    " ".join(argv))
        rc = subprocess.run(argv, check=False).returncode
        if rc != 0:
            sys.stderr.write(f"error: step {step!r} failed (exit {rc})\n")
            return rc
    return 0


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
