"""Runs a pipeline: each step as a subprocess of its job's CLI, independent branches side
by side.

A subprocess per step (``python -m <job> ...``), as an orchestrator runs a container per
step: Beam, TensorFlow and Ray keep process-wide state, so a fresh process for each step
isolates one step's failure, memory and threads from the next. Each step's output is
``RUN/<step>``; a committed output whose stored cache key equals the step's key is kept
("cached"); otherwise the directory is cleared and the job runs. A failing step stops
its downstream steps ("skipped"), never an unrelated branch. ``RUN/run.json`` is
rewritten after every change, so a killed run leaves an exact account behind.

Scheduling: a step is decided once every step it reads is settled (cached, done, failed,
skipped); one that must run waits for a free slot. At most ``max_parallel`` jobs run at
once (``--max-parallel``, default the core count) and of those at most ``ray_slots`` Ray
jobs (``--ray-slots``, default 1: Ray steps share one cluster, and each trainer sizes
itself to the cluster's cores, so two at once would oversubscribe them). Ready steps start
in the pipeline file's order. A step's output depends only on its inputs' bytes, never on
what ran beside it: a parallel run commits the same artifacts as ``--max-parallel 1``.

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
from typing import Any

from mlbatch.artifacts import lock
from pipelines import alerts, cache, figures, lineage_hook, placement, run_file
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
    period: str | None = None  # an instance's period (docs/periods.md); None: a plain step

    def record(self) -> dict:
        doc = dataclasses.asdict(self)
        doc.pop("reason")
        return doc


def default_max_parallel() -> int:
    """--max-parallel's default: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    only: tuple[str, ...] = ()
    start: str | None = None  # --from
    dry_run: bool = False
    no_cache: bool = False
    max_parallel: int = 1  # steps running at once (the CLI's default: the core count)
    ray_slots: int = 1  # of those, Ray jobs at once (they share one cluster's cores)

    def __post_init__(self):
        for name in ("max_parallel", "ray_slots"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be a whole number >= 1, got {value!r}")


# A step's upstream steps are settled when each is in one of these states.
SETTLED = frozenset({"cached", "done", "failed", "skipped", "would run"})
_TICK_S = 0.2


@dataclasses.dataclass
class _Running:
    """A step whose job is running."""
    state: StepState
    key: cache.StepKey
    proc: subprocess.Popen
    reaper: subprocess.Popen
    log: Any
    log_path: str
    t0: float
    ray: bool


@dataclasses.dataclass
class _Slots:
    """The scheduler's books: steps not yet decided, queued to run, running."""
    pending: list[StepState]
    queued: list[tuple[StepState, cache.StepKey]] = dataclasses.field(default_factory=list)
    running: dict[str, _Running] = dataclasses.field(default_factory=dict)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def selected_steps(pipeline: Pipeline, options: RunOptions) -> set[str]:
    """--only: those steps; --from: that step and everything downstream; else all. A step
    declared per period names all its instances (``score``), an instance one
    (``score[2013-10]``)."""
    if options.only:
        return {n for name in options.only for n in pipeline.named(name)}
    if options.start:
        starts = pipeline.named(options.start)
        return set(starts).union(*(pipeline.downstream(n) for n in starts))
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
                                 inputs=self._upstream(n), period=pipeline.steps[n].period)
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
        slots = "" if self.options.dry_run else (
            f" (up to {self.options.max_parallel} steps at a time, "
            f"{self.options.ray_slots} on Ray)")
        self.progress.start(f"{verb} pipeline {self.pipeline.name} -> {self.run_dir}{slots}")
        slots_state = _Slots(pending=list(self.states))
        try:
            while slots_state.pending or slots_state.queued or slots_state.running:
                if not self._settle(slots_state) and not (
                        slots_state.queued or slots_state.running):
                    raise RuntimeError("no step can start: "  # a cycle; the spec forbids it
                                       f"{[s.name for s in slots_state.pending]}")
                self._launch_queued(slots_state)
                if slots_state.running:
                    self._reap(slots_state)
        except KeyboardInterrupt:  # kill every running job; say so in run.json
            for running in slots_state.running.values():
                _end_step(running.proc, running.reaper)
                running.log.close()
                running.state.status, running.state.error = "failed", "interrupted"
            if not self.options.dry_run:
                self.write_run_json(ended=_now(), status="failed")
            raise
        ok = all(s.status in ("done", "cached") for s in self.states if s.name in self.selected)
        if not self.options.dry_run:
            self.write_run_json(ended=_now(), status="succeeded" if ok else "failed")
        return ok

    def _settle(self, slots: _Slots) -> int:
        """Every pending step whose upstream steps are all settled: decided at once
        (cached, skipped, would run, failed before starting) or queued to run. Returns
        how many were."""
        before = len(slots.pending)
        for state in list(slots.pending):
            if any(self.by_name[n].status not in SETTLED for n in state.inputs):
                continue
            slots.pending.remove(state)
            key = self._step(self.pipeline.steps[state.name], state)
            if key is not None:
                slots.queued.append((state, key))
                continue
            self.progress.update(state)
            if not self.options.dry_run:
                self.write_run_json()
        return before - len(slots.pending)

    def _is_ray(self, state: StepState) -> bool:
        return JOBS[state.job].kind == "ray" or state.runs_on.startswith("ray")

    def _launch_queued(self, slots: _Slots) -> None:
        """Starts queued steps, in the pipeline's order, while slots are free: at most
        ``max_parallel`` steps at a time, of which at most ``ray_slots`` Ray jobs."""
        for state, key in list(slots.queued):
            if len(slots.running) >= self.options.max_parallel:
                return
            ray = self._is_ray(state)
            if ray and sum(r.ray for r in slots.running.values()) >= self.options.ray_slots:
                continue
            slots.queued.remove((state, key))
            slots.running[state.name] = self._launch(self.pipeline.steps[state.name], state,
                                                     key, ray)

    def _reap(self, slots: _Slots) -> None:
        """Waits until a running step ends (ticking elapsed times); finishes it."""
        shown = int(time.monotonic())
        while True:
            for name, running in list(slots.running.items()):
                rc = running.proc.poll()
                if rc is not None:
                    del slots.running[name]
                    self._finish(running, rc)
                    return
            now = time.monotonic()
            if int(now) != shown:  # redraw (on a terminal) once a second
                shown = int(now)
                for running in slots.running.values():
                    running.state.elapsed_s = round(now - running.t0, 1)
                self.progress.update()
            time.sleep(_TICK_S)

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
        return os.path.join(self.run_dir, self.pipeline.steps[name].out)

    def _step(self, step: Step, state: StepState) -> cache.StepKey | None:
        """Decides a step whose upstream steps are settled; returns its cache key when it
        must run (None: decided here, ``state`` says how)."""
        state.output = step.out
        if step.name not in self.selected:
            state.status, state.reason = "skipped", "not selected"
            state.key_figures = figures.key_figures(self._out(step.name))
            return None
        blocker = self._blocked_by(state)
        if blocker is not None:
            up = self.by_name[blocker]
            if up.status == "would run":
                state.status, state.reason = "would run", f"upstream {blocker} reruns"
            elif up.status == "failed":
                state.status, state.error = "skipped", f"upstream {blocker} failed"
            else:
                state.status, state.error = "skipped", f"upstream {blocker} has no output"
            return None
        try:
            state.runs_on = placement.where(step)
            key = cache.step_key(self.pipeline, step, self.run_dir)
        except (cache.CacheError, placement.PlacementError) as e:
            state.status, state.error = "failed", str(e)
            return None
        state.cache_key = key.key
        if not self.options.no_cache and cache.is_hit(self._out(step.name), key):
            state.status, state.reason = "cached", "same cache key"
            state.key_figures = figures.key_figures(self._out(step.name))
            self._record(step, state)
            return None
        state.reason = "--no-cache" if self.options.no_cache else cache.why_miss(
            self._out(step.name), key)
        if self.options.dry_run:
            state.status = "would run"
            return None
        return key

    def command(self, step: Step) -> list[str]:
        return [sys.executable, "-m", JOBS[step.job].module, *step.argv(self.run_dir),
                *placement.placement_argv(step, pipeline=self.pipeline.name)]

    def _launch(self, step: Step, state: StepState, key: cache.StepKey,
                ray: bool) -> _Running:
        """Clears the step's output and starts its job (its log: RUN/_logs/<step>.log)."""
        shutil.rmtree(self._out(step.name), ignore_errors=True)
        os.makedirs(os.path.join(self.run_dir, LOG_DIR), exist_ok=True)
        log_path = os.path.join(self.run_dir, LOG_DIR, f"{step.out}.log")
        state.status, state.started = "running", _now()  # reason: why it runs
        state.elapsed_s = 0.0
        log = open(log_path, "wb")  # noqa: SIM115 - closed by _finish or on interrupt
        try:
            proc, reaper = _start_step(self.command(step), log)
        except OSError:
            log.close()
            raise
        self.progress.update(state)
        self.write_run_json()
        return _Running(state, key, proc, reaper, log, log_path, time.monotonic(), ray)

    def _finish(self, running: _Running, rc: int) -> None:
        """A step's job ended: kills what is left of its processes; done (output committed
        and the exit status one of the job's ok exits: cache record stored) or failed."""
        state, step = running.state, self.pipeline.steps[running.state.name]
        try:
            _end_step(running.proc, running.reaper)
        finally:
            running.log.close()
        state.elapsed_s = round(time.monotonic() - running.t0, 1)
        out = self._out(step.name)
        committed = cache.output_digest(out) is not None
        if rc in JOBS[step.job].ok_exits and committed:
            cache.store(out, running.key)
            state.status, state.reason = "done", None
            state.key_figures = figures.key_figures(out)
            self._alert(step, state, out)
        else:
            problem = _failure_line(running.log_path) or "(no output)"
            if not committed:
                problem = f"{problem} (no committed output)"
            state.status = "failed"
            state.error = (f"exit {rc}: {problem}; "
                           f"log: {os.path.relpath(running.log_path, self.run_dir)}")
        self._record(step, state)
        self.progress.update(state)
        self.write_run_json()

    def _alert(self, step: Step, state: StepState, out: str) -> None:
        sent = alerts.send(self.pipeline.on_alert, self.pipeline.name, step.name, out)
        if sent is not None:
            state.key_figures = {**state.key_figures, "alert": sent}

    def _record(self, step: Step, state: StepState) -> None:
        lineage_hook.record(self.run_dir, f"{self.pipeline.name}@{self.started}", self.pipeline,
                            step, state)

    def write_run_json(self, *, ended: str | None = None, status: str = "running") -> None:
        run_file.write_run(
            self.run_dir, pipeline=self.pipeline.name, spec=os.path.abspath(self.pipeline.path),
            spec_digest=self.pipeline.digest, started=self.started, ended=ended, status=status,
            steps=[s.record() for s in self.states], versions=figures.versions())
