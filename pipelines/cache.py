"""Content-addressed step cache: a step's key is a hash of what its output depends on.

    key = sha256(canonical JSON of {job, code, params, inputs, raw})

* ``code``: SHA-256 over the source files of the job's folders (``JobInfo.code``: its
  package, ``mlbatch/``, the Beam or Ray common package), by relative path and content;
  not a git commit, so an unrelated commit keeps the cache and an uncommitted edit does not.
* ``params``: the step's args as written (references stay ``"${step}"``, never a path),
  with the raw args taken out;
* ``inputs``: the content digest (``artifact.json`` ``digest``) of each referenced step's
  committed output, and of the model a ``registry:NAME@ALIAS`` arg resolves to now (so a
  moved alias reruns the step: ``registered``);
* ``raw``: for each raw arg, the relative paths and SHA-256 of every file under it; in a
  step with a ``periods`` arg, only the files of those Hive period folders (and the files
  outside any period folder), so a new or changed period outside the range reruns nothing.

An output is read through ``read_manifest``, which verifies its files against their
recorded SHA-256: an output changed on disk counts as no output (the step reruns, saying
"output changed since its commit"), and so does an upstream one (it reruns first).

No path, run id, time or mtime enters the key: identical bytes anywhere are a hit, a
changed file at the same path is a miss. The key and the digest it produced are stored
in ``RUN/<step>/.pipeline_cache.json`` (a dot file: outside the artifact's digest), so the
run directory can be moved or copied and stay cached.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mlbatch import periods as mlbatch_periods
from mlbatch import storage
from mlbatch.artifacts import ArtifactError, read_manifest
from mlbatch.artifacts.manifest import IntegrityError
from mlbatch.artifacts.registry import is_ref
from mlbatch.artifacts.registry import resolve as resolve_registered
from pipelines.registry import JOBS
from pipelines.spec import RUN_REF, Pipeline, Step, resolve
from mlbatch.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
CACHE_FILE = ".pipeline_cache.json"
_SOURCE_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".txt")
_MAGIC = set("*?[")


class CacheError(ValueError, UsageError):
    """A step's key cannot be computed (a raw input or an upstream output is missing)."""


def canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _folder_files(folder: str) -> tuple[tuple[str, str], ...]:
    root = REPO / folder
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
            rel = path.relative_to(REPO).as_posix()
            out.append((rel, hashlib.sha256(path.read_bytes()).hexdigest()))
    return tuple(out)


def code_version(job: str) -> str:
    """SHA-256 over the job's source files (relative path + content)."""
    files = sorted({f for folder in JOBS[job].code for f in _folder_files(folder)})
    return _sha(canonical(files))


def _glob_files(pattern: str) -> list[tuple[str, str]]:
    parts = pattern.split("/")
    first = next(i for i, p in enumerate(parts) if _MAGIC & set(p))
    root = "/".join(parts[:first]) or "."
    rest = "/".join(parts[first:])
    return [(f.relpath, storage.join(root, f.relpath)) for f in storage.list_files(root)
            if _glob_match(f.relpath.split("/"), rest.split("/"))]


def _glob_match(parts: list[str], pattern: list[str]) -> bool:
    """Shell glob semantics: ``*`` does not cross a ``/``."""
    return len(parts) == len(pattern) and all(map(fnmatch.fnmatchcase, parts, pattern))


def raw_files(value: str) -> list[tuple[str, str]]:
    """(name relative to the arg, uri) of every file a raw arg names: a file, a directory
    (recursively) or a glob. Raises CacheError when it names nothing."""
    if _MAGIC & set(value):
        files = _glob_files(value)
    elif storage.is_dir(value):
        files = [(f.relpath, storage.join(value, f.relpath)) for f in storage.list_files(value)]
    elif storage.exists(value):
        files = [("", value)]
    else:
        files = []
    if not files:
        raise CacheError(f"names no file: {value}")
    return files


def raw_digest(value: Any, periods: Any = None) -> list[list[str]]:
    """[name, sha256] of every file under a raw arg (a list arg: each item in turn).

    With ``periods`` (the step's ``periods`` arg, e.g. ``2013-01..2013-09``), a file inside
    a Hive period folder (``period=P/``) counts only when P is one of those periods: a job
    that reads a range of periods does not rerun when another period arrives or changes.
    Files outside any period folder (lookup tables beside the folders) always count."""
    values = value if isinstance(value, list) else [value]
    # None: a file outside any period folder, always kept
    keep = {None, *mlbatch_periods.expand(periods)} if periods is not None else None
    return [[f"{i}:{name}", storage.sha256(uri)] for i, v in enumerate(values)
            for name, uri in raw_files(str(v))
            if keep is None or mlbatch_periods.of_path(name) in keep]


def output_digest(root: str) -> str | None:
    """The digest of the committed artifact in ``root`` (None: no committed output)."""
    try:
        return read_manifest(root).digest
    except (ArtifactError, FileNotFoundError, storage.StorageError):
        return None


def registered(step: Step, run_dir: str) -> dict[str, str]:
    """``{reference: "NAME/VERSION@digest"}`` of each registry reference among the step's
    args, resolved through its ``registry`` arg (else $MLBATCH_REGISTRY) as the job will."""
    registry = step.args.get("registry")
    store = resolve(registry, run_dir) if registry else None
    out = {}
    for ref in sorted({v for v in step.args.values() if is_ref(v)}):
        try:
            found = resolve_registered(ref, store)
        except ArtifactError as e:
            raise CacheError(str(e)) from None
        out[ref] = f"{found.name}/{found.version}@{found.digest}"
    return out


@dataclasses.dataclass(frozen=True)
class StepKey:
    key: str
    parts: dict  # what went into the key, stored beside it (for "why does it rerun")


def step_key(pipeline: Pipeline, step: Step, run_dir: str) -> StepKey:
    """The step's cache key; every upstream output must be committed in ``run_dir``."""
    inputs = {}
    upstream = [n for n in pipeline.steps if n != step.name] if step.reads_run else step.upstream
    for name in upstream:
        digest = output_digest(os.path.join(run_dir, pipeline.steps[name].out))
        if digest is None:
            raise CacheError(f"upstream step {name!r} has no committed output in {run_dir}")
        inputs[name] = digest
    inputs.update(registered(step, run_dir))
    raw = {}
    for key in step.raw:
        try:
            raw[key] = raw_digest(resolve(step.args[key], run_dir), step.args.get("periods"))
        except CacheError as e:
            raise CacheError(f"raw input {key!r} {e}") from None
    params = {k: v for k, v in step.args.items() if k not in step.raw}
    if step.reads_run:  # the run directory's place is not content
        params = {k: v for k, v in params.items() if v != "${" + RUN_REF + "}"}
    parts = {"job": step.job, "code": code_version(step.job), "params": params,
             "inputs": inputs, "raw": {k: _sha(canonical(v)) for k, v in raw.items()}}
    return StepKey(key=_sha(canonical(parts)), parts=parts)


def stored(output: str) -> dict | None:
    """The cache record of a committed output (None: none, or not committed)."""
    path = os.path.join(output, CACHE_FILE)
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if output_digest(output) != record.get("digest"):
        return None  # re-run or tampered with since the key was stored
    return record


def is_hit(output: str, key: StepKey) -> bool:
    record = stored(output)
    return record is not None and record.get("cache_key") == key.key


def store(output: str, key: StepKey) -> str:
    """Records ``key`` with the committed output; returns the output's digest."""
    digest = output_digest(output)
    if digest is None:
        raise CacheError(f"{output} holds no committed artifact")
    record = {"cache_key": key.key, "digest": digest, "parts": key.parts}
    storage.write_text(os.path.join(output, CACHE_FILE), json.dumps(record, indent=2))
    return digest


def why_miss(output: str, key: StepKey) -> str:
    """Why ``key`` misses in ``output``: for --dry-run and the progress line."""
    if output_digest(output) is None:
        try:
            read_manifest(output)
        except IntegrityError as e:
            return f"output changed since its commit ({str(e).split(': ', 1)[-1]})"
        except (ArtifactError, storage.StorageError):
            pass
        return "no committed output"
    record = stored(output)
    if record is None:
        return "output has no cache record"
    old = record.get("parts", {})
    changed = [f"{field}.{name}" if name else field
               for field in ("job", "code", "params", "inputs", "raw")
               for name in _changed(old.get(field), key.parts[field])]
    return "changed: " + ", ".join(changed) if changed else "key changed"


def _changed(old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return [] if old == new else [""]
