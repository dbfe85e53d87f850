"""Runs a declared pipeline: every step in order, cached by content.

    python -m pipelines run pipelines/flights.yaml --output out/run \\
        [--only STEP ...] [--from STEP] [--dry-run] [--no-cache]
        [--max-parallel N] [--ray-slots N]
    python -m pipelines compare RUN_A RUN_B [--json]
        (parameters, code versions, input data, periods and metrics of two runs, side by
        side, with what changed)
    python -m pipelines import-lineage RUN [--store lineage.sqlite]
        (a remote run's step records, RUN/_lineage/*.json, into a lineage store)

Exit status: 0 when every selected step is done or cached, 1 when one failed (or was
skipped because an upstream step failed), 2 for a bad pipeline file or flags.
"""
from __future__ import annotations

import argparse
import json
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
    r.add_argument("--max-parallel", type=_slots, default=None, metavar="N",
                   help="steps running at once (independent branches side by side); "
                        "default: the core count")
    r.add_argument("--ray-slots", type=_slots, default=1, metavar="N",
                   help="of those, Ray jobs at once (they share one cluster; default 1)")
    c = sub.add_parser("compare", help="compare two runs side by side")
    c.add_argument("run_a", metavar="RUN_A", help="run directory (holds run.json)")
    c.add_argument("run_b", metavar="RUN_B", help="run directory (holds run.json)")
    c.add_argument("--all", action="store_true", help="list unchanged rows too")
    c.add_argument("--json", action="store_true", help="the comparison as JSON")
    i = sub.add_parser("import-lineage", help="import a remote run's lineage records")
    i.add_argument("run", help="run directory (local or gs://) holding _lineage/")
    i.add_argument("--store", help="lineage store (default RUN/lineage.sqlite)")
    return p.parse_args(argv)


def _slots(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _compare(args: argparse.Namespace) -> int:
    from pipelines.compare import CompareError, compare_runs, render

    try:
        comparison = compare_runs(args.run_a, args.run_b)
    except CompareError as e:
        print(f"python -m pipelines: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    if args.json:
        print(json.dumps(comparison, indent=1, sort_keys=True))
    else:
        sys.stdout.write(render(comparison, unchanged=args.all))
    return 0


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
        if not pipeline.named(name):
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
    from pipelines.runner import RunDirError, RunOptions, Runner, default_max_parallel

    args = parse_args(argv)
    if args.command == "import-lineage":
        return _import_lineage(args)
    if args.command == "compare":
        return _compare(args)
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
            no_cache=args.no_cache, ray_slots=args.ray_slots,
            max_parallel=args.max_parallel or default_max_parallel()))
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
