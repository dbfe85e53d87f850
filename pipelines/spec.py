"""The pipeline file: steps, their jobs and parameters, and the DAG their references make.

    pipeline: flights
    defaults: {runs_on: local}     # local | ray (address from RAY_ADDRESS) | ray:HOST:PORT | dataflow
    steps:
      features:
        job: beam_jobs.features
        args: {schema: schemas/flights.yaml, input: data/flights}
        raw: [schema, input]       # args naming raw files, dirs or globs (content-hashed)
      xgboost:
        job: ray_jobs.xgboost
        args: {features: "${features}", num_boost_round: 100}

An argument ``"${step}"`` or ``"${step}/sub"`` is that step's committed output
(``RUN/<step>[/sub]``); ``"${RUN}"`` is the run directory itself (a step naming it comes
after every other step). These references alone define the DAG. Args become flags:
``key_name: v`` -> ``--key-name v``, ``true`` -> a bare flag, ``false``/``null`` -> nothing,
a list -> the flag once per item. Jobs and their flags are checked against
``pipelines.registry.JOBS`` without importing the jobs.

Periods (docs/periods.md): a step with ``periods: 2013-10..2013-12`` (or a list) stands
for one instance per period, ``score[2013-10]`` ..., each with its own output
(``RUN/score@2013-10``), cache key and lineage. In its args ``${period}`` is the
instance's period and ``${prev_period}`` the calendar period before it, anywhere in a
string; ``"${score[${period}]}"`` reads the same period's instance of ``score`` and
``"${monitor[${prev_period}]}"`` the previous period's.
"""
from __future__ import annotations

import dataclasses
import graphlib
import hashlib
import os
import re
import shlex
from pathlib import Path
from typing import Any

from mlbatch.config import ConfigError, load_yaml
from pipelines import periods
from pipelines.registry import JOBS
from mlbatch.errors import UsageError

RUN_REF = "RUN"
_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_-]*(?:\[[0-9-]+\])?)\}(/[^${}]+)?$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
PERIOD_VARS = ("period", "prev_period")
_STEP_FIELDS = {"job", "args", "raw", "runs_on", "periods"}
_TOP_FIELDS = {"pipeline", "defaults", "steps", "on_alert"}
_DEFAULT_FIELDS = {"runs_on"}
_RUNS_ON = re.compile(r"^(local|dataflow|ray|ray:[^:\s]+:\d+)$")
_SCALARS = (str, int, float, bool)


class SpecError(ValueError, UsageError):
    """The pipeline file is wrong; the message names the step and the field."""


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    job: str
    runs_on: str
    args: dict[str, Any]
    raw: list[str]
    upstream: list[str]  # steps whose outputs this one reads (sorted); RUN_REF excluded
    period: str | None = None  # an instance's period (``periods`` field), else None
    family: str = ""  # the step as declared (``score`` for ``score[2013-10]``)

    @property
    def out(self) -> str:
        """Its output folder under the run directory (``score@2013-10`` for an instance)."""
        return periods.output_dir(self.name)

    @property
    def reads_run(self) -> bool:
        """Whether an argument is ``${RUN}`` (the step then follows every other step)."""
        return any(ref == RUN_REF for ref, _ in _refs_of(self.args))

    def argv(self, run_dir: str | os.PathLike) -> list[str]:
        """The job's command line in ``run_dir``: its args as flags, references resolved,
        then ``--output RUN/<step>`` (placement flags are the runner's)."""
        info = JOBS[self.job]
        run_dir = os.fspath(run_dir)
        positional = [str(resolve(self.args[k], run_dir)) for k in info.positional
                      if k in self.args]
        flags: list[str] = []
        for key, value in self.args.items():
            if key in info.positional:
                continue
            flags += _flag(key, resolve(value, run_dir))
        return [*positional, *flags, "--output", os.path.join(run_dir, self.out)]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    name: str
    path: str
    steps: dict[str, Step]
    digest: str  # sha256 of the file's bytes
    on_alert: tuple[str, ...] = ()  # argv run with a step's alert JSON on stdin

    def order(self) -> list[str]:
        """Topological order; among steps ready at once, the file's order."""
        position = {name: i for i, name in enumerate(self.steps)}
        sorter = graphlib.TopologicalSorter({n: _deps(self, n) for n in self.steps})
        sorter.prepare()
        done: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            for name in ready:
                done.append(name)
                sorter.done(name)
        return done

    def named(self, name: str) -> list[str]:
        """The steps a name given on the command line means: the step or instance of that
        name, or every instance of a step declared per period ([] when none)."""
        if name in self.steps:
            return [name]
        return [n for n, s in self.steps.items() if s.period and s.family == name]

    def downstream(self, name: str) -> set[str]:
        """Every step that reads ``name``'s output, directly or not (``name`` excluded)."""
        out: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for other in self.steps:
                if other not in out and current in _deps(self, other):
                    out.add(other)
                    frontier.append(other)
        return out


def _deps(pipeline: Pipeline, name: str) -> set[str]:
    step = pipeline.steps[name]
    if step.reads_run:
        return {n for n, s in pipeline.steps.items() if n != name and not s.reads_run}
    return set(step.upstream)


def _flag(key: str, value: Any) -> list[str]:
    flag = "--" + key.replace("_", "-")
    if value is None or value is False:
        return []
    if value is True:
        return [flag]
    if isinstance(value, list):
        return [part for item in value for part in (flag, _text(item))]
    return [flag, _text(value)]


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def resolve(value: Any, run_dir: str) -> Any:
    """``value`` with every reference replaced by its path under ``run_dir``."""
    if isinstance(value, list):
        return [resolve(v, run_dir) for v in value]
    if isinstance(value, str):
        m = _REF.match(value)
        if m:
            ref, sub = m.group(1), (m.group(2) or "").lstrip("/")
            base = run_dir if ref == RUN_REF else os.path.join(run_dir, periods.output_dir(ref))
            return os.path.join(base, sub) if sub else base
    return value


def _refs_of(args: dict[str, Any]) -> list[tuple[str, str]]:
    """(referenced step, arg key) for every reference in ``args``."""
    out = []
    for key, value in args.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                m = _REF.match(item)
                if m:
                    out.append((m.group(1), key))
    return out


def _check_args(name: str, job: str, args: Any) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise SpecError(f"step {name!r}: field 'args' must be a mapping of flag names to values")
    info = JOBS[job]
    for key, value in args.items():
        if not isinstance(key, str) or key not in info.flags:
            known = ", ".join(sorted(info.flags))
            raise SpecError(f"step {name!r}: field 'args.{key}': {job} has no flag "
                            f"--{str(key).replace('_', '-')} (known: {known})")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is not None and not isinstance(item, _SCALARS):
                raise SpecError(f"step {name!r}: field 'args.{key}': values are scalars or "
                                f"lists of scalars, got {type(item).__name__}")
            if isinstance(item, str) and "${" in item and not _REF.match(item):
                raise SpecError(f"step {name!r}: field 'args.{key}': bad reference {item!r} "
                                "(write \"${step}\", \"${step}/sub/path\" or "
                                "\"${step[PERIOD]}\", the whole value)")
            if isinstance(item, str) and _REF.match(item) and _escapes(item):
                raise SpecError(f"step {name!r}: field 'args.{key}': reference {item!r} "
                                "leads out of the step's output ('..' or '.' in its path); "
                                "a step reads only inside the run directory")
    return dict(args)


def _escapes(ref: str) -> bool:
    """Whether the sub-path of a reference climbs (``..``) or names ``.``/empty parts."""
    sub = (_REF.match(ref).group(2) or "").strip("/")
    return bool(sub) and any(part in ("", ".", "..") for part in sub.split("/"))


def _check_raw(name: str, raw: Any, args: dict[str, Any]) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise SpecError(f"step {name!r}: field 'raw' must be a list of arg names")
    for key in raw:
        if key not in args:
            raise SpecError(f"step {name!r}: field 'raw': {key!r} is not one of its args")
        if any(k == key for _, k in _refs_of({key: args[key]})):
            raise SpecError(f"step {name!r}: field 'raw': {key!r} is a step reference, "
                            "not a raw input")
    return list(raw)


def _check_runs_on(where: str, value: Any, job: str | None) -> str:
    if not isinstance(value, str) or not _RUNS_ON.match(value):
        raise SpecError(f"{where}: field 'runs_on' must be local, ray, ray:HOST:PORT or "
                        f"dataflow, got {value!r}")
    kind = JOBS[job].kind if job else None
    if kind and value == "dataflow" and kind != "beam":
        raise SpecError(f"{where}: field 'runs_on': {job} is not a Beam job, it cannot run on "
                        "Dataflow")
    if kind and value.startswith("ray") and kind != "ray":
        raise SpecError(f"{where}: field 'runs_on': {job} is not a Ray job, it cannot run on "
                        "a Ray cluster")
    return value


def _substitute(name: str, args: Any, period: str | None) -> Any:
    """``args`` with ``${period}`` / ``${prev_period}`` replaced in every string (SpecError
    when the step declares no periods)."""
    if not isinstance(args, dict):
        return args
    values = {"period": period, "prev_period": periods.previous(period) if period else None}

    def sub(key: str, item: Any) -> Any:
        if not isinstance(item, str):
            return item
        for var in PERIOD_VARS:
            token = "${" + var + "}"
            if token in item and period is None:
                raise SpecError(f"step {name!r}: field 'args.{key}': {token} needs a "
                                "'periods' field on the step")
            item = item.replace(token, values[var] or "")
        return item

    return {k: [sub(k, i) for i in v] if isinstance(v, list) else sub(k, v)
            for k, v in args.items()}


def _steps(name: str, doc: Any, defaults: dict) -> list[Step]:
    """The step as declared, or one instance per period of its ``periods`` field."""
    if not isinstance(doc, dict) or "periods" not in doc:
        return [_step(name, doc, defaults, None)]
    try:
        declared = periods.expand(doc["periods"])
    except periods.PeriodError as e:
        raise SpecError(f"step {name!r}: field 'periods': {e}") from None
    return [_step(name, doc, defaults, p) for p in declared]


def _step(name: str, doc: Any, defaults: dict, period: str | None) -> Step:
    if not _NAME.match(str(name)) or name == RUN_REF:
        raise SpecError(f"step {name!r}: step names are letters, digits, _ and - "
                        f"(and not {RUN_REF})")
    if not isinstance(doc, dict):
        raise SpecError(f"step {name!r}: must be a mapping with job, args, raw, runs_on")
    unknown = sorted(set(doc) - _STEP_FIELDS)
    if unknown:
        raise SpecError(f"step {name!r}: unknown field {unknown[0]!r} "
                        f"(known: {', '.join(sorted(_STEP_FIELDS))})")
    job = doc.get("job")
    if job not in JOBS:
        raise SpecError(f"step {name!r}: field 'job': unknown job {job!r} "
                        f"(known: {', '.join(sorted(JOBS))})")
    family, name = name, periods.instance_name(name, period) if period else name
    args = _check_args(name, job, _substitute(name, doc.get("args") or {}, period))
    raw = _check_raw(name, doc.get("raw") or [], args)
    runs_on = doc.get("runs_on", defaults.get("runs_on", "local"))
    if JOBS[job].kind != "ray" and "runs_on" not in doc and str(runs_on).startswith("ray"):
        runs_on = "local"  # a Ray default does not move the Beam steps
    if JOBS[job].kind != "beam" and "runs_on" not in doc and runs_on == "dataflow":
        runs_on = "local"
    runs_on = _check_runs_on(f"step {name!r}", runs_on, job)
    upstream = sorted({ref for ref, _ in _refs_of(args) if ref != RUN_REF})
    return Step(name=name, job=job, runs_on=runs_on, args=args, raw=raw, upstream=upstream,
                period=period, family=family)


def _check_graph(steps: dict[str, Step]) -> None:
    families = {s.family for s in steps.values() if s.period}
    for step in steps.values():
        for ref, key in _refs_of(step.args):
            if ref in families:
                raise SpecError(f"step {step.name!r}: field 'args.{key}': step {ref!r} is "
                                "declared per period: name an instance, e.g. "
                                f"\"${{{ref}[${{period}}]}}\" or \"${{{ref}[2013-10]}}\"")
            if ref != RUN_REF and ref not in steps:
                raise SpecError(f"step {step.name!r}: field 'args.{key}': reference to "
                                f"unknown step {ref!r}")
            if ref == step.name:
                raise SpecError(f"step {step.name!r}: field 'args.{key}': a step cannot read "
                                "its own output")
    try:
        graphlib.TopologicalSorter({n: s.upstream for n, s in steps.items()}).prepare()
    except graphlib.CycleError as e:
        cycle = e.args[1]
        if cycle[0] not in steps[cycle[1]].upstream:  # say it as "x reads y"
            cycle = cycle[::-1]
        reads = ", ".join(f"{a} reads {b}" for a, b in zip(cycle[1:], cycle))
        raise SpecError(f"step {cycle[1]!r}: field 'args': references form a cycle: "
                        f"{reads}") from None


def parse_pipeline(text: str, path: str = "<string>") -> Pipeline:
    """A pipeline from the YAML text of a pipeline file; raises SpecError."""
    try:
        doc = load_yaml(text, path)
    except ConfigError as e:
        raise SpecError(f"{e}".replace(": cannot parse", ": not valid YAML:", 1)) from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: a pipeline file is a mapping with pipeline, defaults, steps")
    unknown = sorted(set(doc) - _TOP_FIELDS)
    if unknown:
        raise SpecError(f"{path}: unknown field {unknown[0]!r} "
                        "(known: pipeline, defaults, steps, on_alert)")
    name = doc.get("pipeline")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"{path}: field 'pipeline' must be a name (letters, digits, _ and -)")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - _DEFAULT_FIELDS:
        raise SpecError(f"{path}: field 'defaults' may only set runs_on")
    if "runs_on" in defaults:
        _check_runs_on(f"{path}: defaults", defaults["runs_on"], None)
    steps_doc = doc.get("steps")
    if not isinstance(steps_doc, dict) or not steps_doc:
        raise SpecError(f"{path}: field 'steps' must map step names to steps")
    steps = {s.name: s for n, d in steps_doc.items() for s in _steps(str(n), d, defaults)}
    _check_graph(steps)
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return Pipeline(name=name, path=path, steps=steps, digest=digest,
                    on_alert=_on_alert(path, doc.get("on_alert")))


def _on_alert(path: str, value: Any) -> tuple[str, ...]:
    """``on_alert``: a command line (split like a shell, never run by one) or a list of
    arguments; run by the runner with a step's alert JSON on stdin."""
    if value is None:
        return ()
    try:
        argv = shlex.split(value) if isinstance(value, str) else value
    except ValueError as e:
        raise SpecError(f"{path}: field 'on_alert': {e}") from None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise SpecError(f"{path}: field 'on_alert' must be a command (a string or a "
                        "non-empty list of strings)")
    return tuple(argv)


def load_pipeline(path: str | os.PathLike) -> Pipeline:
    """Reads and checks a pipeline file; raises SpecError naming the step and field."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read the pipeline file: {e.strerror}") from None
    return parse_pipeline(text, os.fspath(path))
