"""Runs a pipeline: steps in topological order, each as a subprocess of its job's CLI.

A subprocess per step (``python -m <job> ...``), as an orchestrator runs a container per
step: Beam, TensorFlow and Ray keep process-wide state, so a fresh process for each step
isolates one step's failure, memory and threads from the next. Each step's output is
``RUN/<step>``; a committed output whose stored cache key equals the step's key is kept
("cached"); otherwise the directory is cleared and the job runs. A failing step stops
its downstream steps ("skipped"), never an unrelated branch. ``RUN/run.json`` is
rewritten after every change, so a killed run leaves an exact account behind.

One runner per run directory (a local path; its lock ``RUN/.mlbatch.lock`` is held for the
whole run). Each step runs in a session of its own; when the step ends, or the runner is
stopped (SIGINT, SIGTERM: ``__main__`` turns both into KeyboardInterrupt), whatever is
left of the step's process group is killed; a reaper process does it when the runner is
killed with SIGKILL.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from mlbatch.artifacts import lock
from pipelines import cache, figures, lineage_hook, placement, run_file
from pipelines.progress import Progress
from pipelines.registry import JOBS
from pipelines.spec import Pipeline, Step
from mlbatch.errors import UsageError

LOGGER = logging.getLogger(__name__)
LOG_DIR = "_logs"


@dataclasses.dataclass
class StepState:
    name: str
    job: str
    runs_on: str
    inputs: list[str]
    status: str = "waiting"  # waiting running cached done failed skipped (dry run: would run)
    cache_key: str | None = None
    output: str | None = None
    started: str | None = None
    elapsed_s: float | None = None
    key_figures: dict = dataclasses.field(default_factory=dict)
    error: str | None = None
    reason: str | None = None  # why it runs / is skipped (progress and --dry-run)

    def record(self) -> dict:
        doc = dataclasses.asdict(self)
        doc.pop("reason")
        return doc


@dataclasses.dataclass(frozen=True)
class RunOptions:
    only: tuple[str, ...] = ()
    start: str | None = None  # --from
    dry_run: bool = False
    no_cache: bool = False


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def selected_steps(pipeline: Pipeline, options: RunOptions) -> set[str]:
    """--only: those steps; --from: that step and everything downstream; else all."""
    if options.only:
        return set(options.only)
    if options.start:
        return {options.start} | pipeline.downstream(options.start)
    return set(pipeline.steps)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # in the child, before exec: SIGKILL it when the runner dies
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


# A step's process group outlives its leader (a job's forked driver, a local Ray): the
# runner kills the group when the step ends or the runner is stopped. For a runner killed
# with SIGKILL, this reaper (a process of its own, told by the kernel when the runner
# dies: PR_SET_PDEATHSIG) kills the group; it exits by itself once the group is empty.
_REAPER = """
import ctypes, os, signal, sys, time
pgid, runner = int(sys.argv[1]), int(sys.argv[2])
def reap(*_):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    os._exit(0)
signal.signal(signal.SIGTERM, reap)
signal.signal(signal.SIGINT, signal.SIG_IGN)
ctypes.CDLL(None).prctl(1, signal.SIGTERM)
if os.getppid() != runner:
    reap()
while True:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        os._exit(0)
    time.sleep(1.0)
"""


def _start_step(argv: list[str], log) -> tuple[subprocess.Popen, subprocess.Popen]:
    """The step's process (leader of its own session and process group) and its reaper."""
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_die_with_parent)
    reaper = subprocess.Popen([sys.executable, "-c", _REAPER, str(proc.pid), str(os.getpid())],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              start_new_session=True)  # not killed with the runner's group
    return proc, reaper


def _end_step(proc: subprocess.Popen, reaper: subprocess.Popen) -> None:
    """Kills whatever is left of the step's process group, then its reaper."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait()
    reaper.kill()
    reaper.wait()


_PROBLEM = re.compile(r"^([\w.]*(Error|Exception)|[\w. -]+: error): ")


def _failure_line(log_path: str) -> str:
    """The line of a job's log that names its problem: its last "...Error: ..." or
    "prog: error: ..." line, else its last line."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [ln.strip() for ln in f.read().splitlines()[-200:] if ln.strip()]
    except OSError:
        return ""
    problems = [ln for ln in lines if _PROBLEM.match(ln)]
    return (problems or lines or [""])[-1][:300]


class RunDirError(ValueError, UsageError):
    """The run directory cannot be used: not local, or another runner holds it."""


def local_run_dir(run_dir: str) -> str:
    """The run directory as an absolute local path; refuses a URI (``gs://...``): the
    runner, its logs, cache records and lineage store work on local files only."""
    text = os.fspath(run_dir)
    if "://" in text or text.startswith("gs:"):
        raise RunDirError(f"--output {text}: the run directory must be a local path (a "
                          "gs:// run directory is not supported; copy the finished run there)")
    return os.path.abspath(text)


class Runner:
    def __init__(self, pipeline: Pipeline, run_dir: str, options: RunOptions,
                 progress: Progress | None = None):
        self.pipeline = pipeline
        self.run_dir = local_run_dir(run_dir)
        self.options = options
        self.selected = selected_steps(pipeline, options)
        self.states = [StepState(name=n, job=pipeline.steps[n].job,
                                 runs_on=pipeline.steps[n].runs_on,
                                 inputs=self._upstream(n))
                       for n in pipeline.order()]
        self.by_name = {s.name: s for s in self.states}
        self.progress = progress or Progress(self.states)
        self.started = _now()

    def _upstream(self, name: str) -> list[str]:
        step = self.pipeline.steps[name]
        return [n for n in self.pipeline.order() if n != name] if step.reads_run else step.upstream

    def run(self) -> bool:
        """Runs every selected step; True when all of them are done or cached. Holds the
        run directory's lock throughout (RunDirError: another runner holds it)."""
        if self.options.dry_run:
            return self._run()
        try:
            lock.acquire(self.run_dir, f"pipelines run {self.pipeline.name}")
        except lock.LockedError as e:
            raise RunDirError(str(e)) from None
        except OSError as e:
            raise RunDirError(f"--output {self.run_dir} cannot be written: "
                              f"{getattr(e, 'strerror', None) or e}") from None
        try:
            return self._run()
        finally:
            lock.release(self.run_dir)

    def _run(self) -> bool:
        verb = "dry run of" if self.options.dry_run else "running"
        self.progress.start(f"{verb} pipeline {self.pipeline.name} -> {self.run_dir}")
        for state in self.states:
            try:
                self._step(self.pipeline.steps[state.name], state)
            except KeyboardInterrupt:  # the job is killed already; say so in run.json
                state.status, state.error = "failed", "interrupted"
                if not self.options.dry_run:
                    self.write_run_json(ended=_now(), status="failed")
                raise
            self.progress.update(state)
            if not self.options.dry_run:
                self.write_run_json()
        ok = all(s.status in ("done", "cached") for s in self.states if s.name in self.selected)
        if not self.options.dry_run:
            self.write_run_json(ended=_now(), status="succeeded" if ok else "failed")
        return ok

    def _blocked_by(self, state: StepState) -> str | None:
        for name in state.inputs:
            up = self.by_name[name]
            if up.status in ("failed", "skipped") and (
                    up.name in self.selected or cache.output_digest(self._out(name)) is None):
                return name
            if up.status == "would run":
                return name
        return None

    def _out(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def _step(self, step: Step, state: StepState) -> None:
        state.output = step.name
        if step.name not in self.selected:
            state.status, state.reason = "skipped", "not selected"
            state.key_figures = figures.key_figures(self._out(step.name))
            return
        blocker = self._blocked_by(state)
        if blocker is not None:
            up = self.by_name[blocker]
            if up.status == "would run":
                state.status, state.reason = "would run", f"upstream {blocker} reruns"
            elif up.status == "failed":
                state.status, state.error = "skipped", f"upstream {blocker} failed"
            else:
                state.status, state.error = "skipped", f"upstream {blocker} has no output"
            return
        try:
            state.runs_on = placement.where(step)
            key = cache.step_key(self.pipeline, step, self.run_dir)
        except (cache.CacheError, placement.PlacementError) as e:
            state.status, state.error = "failed", str(e)
            return
        state.cache_key = key.key
        if not self.options.no_cache and cache.is_hit(self._out(step.name), key):
            state.status, state.reason = "cached", "same cache key"
            state.key_figures = figures.key_figures(self._out(step.name))
            self._record(step, state)
            return
        state.reason = "--no-cache" if self.options.no_cache else cache.why_miss(
            self._out(step.name), key)
        if self.options.dry_run:
            state.status = "would run"
            return
        self._execute(step, state, key)

    def command(self, step: Step) -> list[str]:
        return [sys.executable, "-m", JOBS[step.job].module, *step.argv(self.run_dir),
                *placement.placement_argv(step, pipeline=self.pipeline.name)]

    def _execute(self, step: Step, state: StepState, key: cache.StepKey) -> None:
        out = self._out(step.name)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(self.run_dir, LOG_DIR), exist_ok=True)
        log_path = os.path.join(self.run_dir, LOG_DIR, f"{step.name}.log")
        state.status, state.started, t0 = "running", _now(), time.monotonic()
        self.progress.update(state)
        self.write_run_json()
        with open(log_path, "wb") as log:
            proc, reaper = _start_step(self.command(step), log)
            try:
                while True:
                    try:
                        rc = proc.wait(timeout=1.0)
                        break
                    except subprocess.TimeoutExpired:
                        state.elapsed_s = round(time.monotonic() - t0, 1)
                        self.progress.update()
            finally:
                _end_step(proc, reaper)
        state.elapsed_s = round(time.monotonic() - t0, 1)
        committed = cache.output_digest(out) is not None
        if rc in JOBS[step.job].ok_exits and committed:
            cache.store(out, key)
            state.status, state.reason = "done", None
            state.key_figures = figures.key_figures(out)
            self._record(step, state)
            return
        problem = _failure_line(log_path) or "(no output)"
        if not committed:
            problem = f"{problem} (no committed output)"
        state.status = "failed"
        state.error = f"exit {rc}: {problem}; log: {os.path.relpath(log_path, self.run_dir)}"
        self._record(step, state)

    def _record(self, step: Step, state: StepState) -> None:
        lineage_hook.record(self.run_dir, f"{self.pipeline.name}@{self.started}", self.pipeline,
                            step, state)

    def write_run_json(self, *, ended: str | None = None, status: str = "running") -> None:
        run_file.write_run(
            self.run_dir, pipeline=self.pipeline.name, spec=os.path.abspath(self.pipeline.path),
            spec_digest=self.pipeline.digest, started=self.started, ended=ended, status=status,
            steps=[s.record() for s in self.states], versions=figures.versions())
