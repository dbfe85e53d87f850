"""python -m pipelines.report RUN [--output RUN/report] [--overwrite] [--previous RUN0]

Renders the run report of a pipeline run directory: RUN/report/index.html (one offline
page), report.md (the same numbers) and artifact.json (type run_report).
"""
from __future__ import annotations

import argparse
import logging
import sys

from mlbatch import logs, storage
from mlbatch.artifacts import ArtifactError, Manifest
from pipelines.report.build import HTML, build_report

LOGGER = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="pipeline run directory (holds run.json and one directory "
                               "per step)")
    p.add_argument("--output", default=None, help="report directory (default RUN/report)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report already committed there")
    p.add_argument("--previous", default=None, metavar="RUN0",
                   help="a previous run directory: adds a Comparison section (steps, "
                        "artifact digests, every key figure side by side)")
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> Manifest:
    """Builds the report; raises ArtifactError (e.g. ReportError, RunError) naming why not."""
    args = parse_args(argv)
    return build_report(args.run, args.output, overwrite=args.overwrite,
                        previous=args.previous)


def main(argv: list[str] | None = None) -> int:
    try:
        manifest = run(argv)
    except ArtifactError as e:
        LOGGER.error("%s", e)
        return 2
    LOGGER.info("report: %s", storage.join(manifest.root, HTML))
    sys.stdout.write(storage.join(manifest.root, HTML) + "\n")
    return 0


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
