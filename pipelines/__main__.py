"""Runs a declared pipeline: every step in order, cached by content.

    python -m pipelines run pipelines/flights.yaml --output out/run \\
        [--only STEP ...] [--from STEP] [--dry-run] [--no-cache]
    python -m pipelines import-lineage RUN [--store lineage.sqlite]
        (a remote run's step records, RUN/_lineage/*.json, into a lineage store)

Exit status: 0 when every selected step is done or cached, 1 when one failed (or was
skipped because an upstream step failed), 2 for a bad pipeline file or flags.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from mlbatch import logs
from pipelines import figures
from pipelines.spec import SpecError, load_pipeline

USAGE_EXIT = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run (or resume) a pipeline")
    r.add_argument("spec", help="pipeline file (YAML)")
    r.add_argument("--output", required=True, help="run directory: RUN/<step>, RUN/run.json")
    r.add_argument("--only", action="append", default=[], metavar="STEP",
                   help="run only this step (repeatable); upstream outputs must be in RUN")
    r.add_argument("--from", dest="start", metavar="STEP",
                   help="run this step and everything downstream of it")
    r.add_argument("--dry-run", action="store_true",
                   help="print what would run and why; run nothing, write nothing")
    r.add_argument("--no-cache", action="store_true",
                   help="run the selected steps even when their outputs are cached")
    i = sub.add_parser("import-lineage", help="import a remote run's lineage records")
    i.add_argument("run", help="run directory (local or gs://) holding _lineage/")
    i.add_argument("--store", help="lineage store (default RUN/lineage.sqlite)")
    return p.parse_args(argv)


def _import_lineage(args: argparse.Namespace) -> int:
    from pipelines.lineage import LineageError
    from pipelines.lineage_hook import import_run

    try:
        store, count = import_run(args.run, args.store)
    except LineageError as e:
        print(f"python -m pipelines: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    print(f"imported {count} steps into {store}")
    return 0


def _check_names(pipeline, names: list[str]) -> None:
    for name in names:
        if name not in pipeline.steps:
            raise SpecError(f"no step {name!r} in {pipeline.path} "
                            f"(steps: {', '.join(pipeline.steps)})")


def _final_table(runner) -> None:
    rows = []
    for s in runner.states:
        rows.append([s.name, s.status, s.runs_on, os.path.join(runner.run_dir, s.output or s.name)
                     if s.key_figures else "-",
                     figures.summary(s.key_figures) or (s.error or "")[:100]])
    report = runner.by_name.get("report")
    footer = [""]
    if report is not None and report.key_figures:
        footer.append(f"report: {os.path.join(runner.run_dir, 'report', 'index.html')}")
    footer.append(f"run record: {os.path.join(runner.run_dir, 'run.json')}")
    runner.progress.table(rows, footer)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from pipelines.runner import RunDirError, RunOptions, Runner

    args = parse_args(argv)
    if args.command == "import-lineage":
        return _import_lineage(args)
    try:
        pipeline = load_pipeline(args.spec)
        _check_names(pipeline, args.only + ([args.start] if args.start else []))
    except SpecError as e:
        print(f"python -m pipelines: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    if args.only and args.start:
        print("python -m pipelines: error: --only and --from exclude each other", file=sys.stderr)
        return USAGE_EXIT
    try:
        runner = Runner(pipeline, args.output, RunOptions(
            only=tuple(args.only), start=args.start, dry_run=args.dry_run,
            no_cache=args.no_cache))
        signal.signal(signal.SIGTERM, _interrupt)  # stop the running step's processes too
        ok = runner.run()
    except RunDirError as e:
        print(f"python -m pipelines: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print("python -m pipelines: interrupted", file=sys.stderr)
        return 130
    if args.dry_run:
        return 0
    _final_table(runner)
    return 0 if ok else 1


if __name__ == "__main__":
    logs.setup("WARNING")
    sys.exit(main())
