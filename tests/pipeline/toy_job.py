"""A tiny job for the runner's scheduling tests: it commits ``out.txt``, a line of text
after its inputs' lines (so its bytes depend on its inputs' bytes only), as a committed
artifact with its inputs recorded.

    python -m tests.pipeline.toy_job --text T [--inputs DIR ...] [--read FILE]
        [--period P] [--fail] --output OUT

Its metrics: ``chars`` (of out.txt) and ``lines``; ``--period`` is recorded in its config;
``--read`` is a raw file whose text goes into out.txt after the inputs' lines.

For the tests, never in its output: ``TOY_JOURNAL`` (a file) gets a line
``start <step>`` / ``end <step>`` appended; ``TOY_MEET`` (``DIR:a,b``) makes steps a and b
wait for each other's ``start`` (up to 120 s, then exit 1): they can only both finish
when they run at the same time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mlbatch.artifacts import ArtifactWriter

MEET_TIMEOUT_S = 120.0
REPO = Path(__file__).resolve().parents[2]


def register(mp) -> None:
    """Declares the jobs ``toy`` and ``toy_ray`` (this module; the second counted as a Ray
    job) in the runner's job table, and lets their processes import ``tests`` (``mp``:
    a pytest MonkeyPatch, which undoes both)."""
    from pipelines.registry import JOBS, JobInfo

    toy = JobInfo("tests.pipeline.toy_job", "local", "run_report",
                  frozenset({"text", "inputs", "read", "period", "fail"}), ("tests/pipeline",))
    mp.setitem(JOBS, "toy", toy)
    mp.setitem(JOBS, "toy_ray", JobInfo(toy.module, "ray", toy.artifact_type, toy.flags,
                                        toy.code))
    mp.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


class ToyError(RuntimeError):
    """The job was told to fail (or its partner never came)."""


def _journal(event: str, step: str) -> None:
    path = os.environ.get("TOY_JOURNAL")
    if path:
        with open(path, "a") as f:
            f.write(f"{event} {step}\n")


def _meet(step: str) -> None:
    spec = os.environ.get("TOY_MEET")
    if not spec:
        return
    folder, names = spec.split(":", 1)
    names = names.split(",")
    if step not in names:
        return
    Path(folder, step).touch()
    deadline = time.monotonic() + MEET_TIMEOUT_S
    while not all(Path(folder, n).exists() for n in names):
        if time.monotonic() > deadline:
            raise ToyError(f"{step}: the other steps of {names} never started beside it")
        time.sleep(0.1)


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text", required=True)
    parser.add_argument("--inputs", action="append", default=[])
    parser.add_argument("--read")
    parser.add_argument("--period")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    step = os.path.basename(args.output)
    _journal("start", step)
    _meet(step)
    if args.fail:
        raise ToyError(f"{step} fails as told")
    writer = ArtifactWriter(args.output, "run_report", job="tests.pipeline.toy_job",
                            config={"text": args.text, "period": args.period})
    writer.claim()
    lines = []
    for i, uri in enumerate(args.inputs):
        writer.input_artifact(f"input{i}", uri)
        lines.append(Path(uri, "out.txt").read_text())
    if args.read:
        lines.append(Path(args.read).read_text())
    text = "".join(lines) + args.text + "\n"
    Path(args.output, "out.txt").write_text(text)
    writer.metrics.update(chars=len(text), lines=text.count("\n"))
    writer.commit(body={"index": "out.txt"})
    _journal("end", step)


if __name__ == "__main__":
    try:
        run()
    except ToyError as e:
        print(f"ToyError: {e}", file=sys.stderr)
        sys.exit(1)
