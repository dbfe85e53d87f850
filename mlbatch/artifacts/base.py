"""Producing an artifact: the one output guard (``claim_output``), the failure marker,
``ArtifactWriter`` (inputs, lineage, metrics, ``commit``) and the one JSON writer.

What ``artifact.json`` holds, how it is read back and verified: ``manifest``.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mlbatch import storage
from mlbatch.errors import JobError
from mlbatch.artifacts import lock
from mlbatch.artifacts.manifest import (FORMAT_VERSIONS, MANIFEST, PENDING, ArtifactError,
                                        Manifest, digest_of, pending_state, read_manifest,
                                        scan_outputs)

LOGGER = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[2]


class LeftUncommittedError(RuntimeError, JobError):
    """A claimed output's job ended without committing or failing it (a bug in the job)."""


class OutputExistsError(ArtifactError):
    """The output directory holds something a job must not silently replace."""


class OutputLockedError(OutputExistsError):
    """Another live run writes the output directory (the message names it)."""


class OutputUnwritableError(OutputExistsError):
    """The output directory cannot be created or written (the message names the path)."""


# --- producing an artifact -----------------------------------------------------------------
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """The source tree's commit, when it is a git checkout (else None)."""
    env = os.environ.get("MLBATCH_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_version() -> str:
    try:
        return metadata.version("mlbatch")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def claim_output(root: str, *, job: str, overwrite: bool = False, resume: bool = False) -> None:
    """The one output guard: makes ``root`` this run's (uncommitted) output directory.

    First the directory's exclusive lock (``lock``): a directory another live run writes
    is refused, naming that run; a lock left by a dead one is taken over. Then:

    * absent or empty: claimed;
    * uncommitted output of an earlier run (it has ``_PENDING.json``: failed or killed):
      cleared and claimed, no flag needed (``resume``: kept as it is, for jobs that
      continue from their own checkpoints);
    * a committed artifact: refused unless ``overwrite`` (then un-committed first, so no
      reader sees a mix) or ``resume`` (un-committed, files kept);
    * anything else (a non-empty directory that is no artifact): refused unless
      ``overwrite``.

    A directory that cannot be created or written (a read-only file system, a path under
    a file) is refused as OutputUnwritableError naming it.
    """
    root = storage.locate(root).uri
    try:
        lock.acquire(root, job)
        _claim_locked(root, job, overwrite=overwrite, resume=resume)
    except lock.LockedError as e:
        raise OutputLockedError(str(e)) from None
    except OSError as e:  # StorageError included
        lock.release(root)
        raise OutputUnwritableError(f"--output {root} cannot be written: "
                                    f"{getattr(e, 'strerror', None) or e}") from e
    except BaseException:
        lock.release(root)
        raise


def _claim_locked(root: str, job: str, *, overwrite: bool, resume: bool) -> None:
    files = [f.relpath for f in storage.list_files(root) if f.relpath != lock.LOCK]
    committed = MANIFEST in files
    ours = committed or PENDING in files
    if files and not ours and not overwrite:
        raise OutputExistsError(f"{root} is not empty and holds no artifact "
                                f"({len(files)} file(s), e.g. {files[0]}); pass --overwrite "
                                f"to replace its contents or choose another --output")
    if committed and not (overwrite or resume):
        kind = json.loads(storage.read_text(storage.join(root, MANIFEST))).get("type", "?")
        raise OutputExistsError(f"{root} already holds a committed {kind} artifact; pass "
                                f"--overwrite to replace it")
    if committed:
        storage.delete(storage.join(root, MANIFEST))  # un-commit before touching anything
    if files and not resume:
        LOGGER.info("clearing %s (%s)", root, "overwrite" if committed or not ours
                    else "uncommitted output of an earlier run")
        for f in files:
            if f != MANIFEST:
                storage.delete(storage.join(root, f))
    storage.makedirs(root)
    storage.write_text(storage.join(root, PENDING), json.dumps(
        {"job": job, "started": _now(), "pid": os.getpid()}, indent=2))


def mark_failed(root: str, job: str, reason: str) -> None:
    """Records in the uncommitted directory why its run failed (readers quote it)."""
    state = pending_state(root) or {"job": job}
    state.update(job=job, failure=reason, failed=_now())
    try:
        storage.write_text(storage.join(root, PENDING), json.dumps(state, indent=2))
    finally:
        lock.release(root)


class ArtifactWriter:
    """Collects what a job used and produced; ``commit()`` writes ``artifact.json`` last.

    Typical use::

        w = ArtifactWriter(out, "xgboost_model", job="ray_jobs.xgboost", config=cfg)
        w.claim(overwrite=args.overwrite)          # the output guard
        with w:                                    # an exception marks the output failed
            fs = w.input_artifact("features", features_uri, "features")
            ... write files under out ...
            w.metrics.update(eval_metrics)
            w.commit(body={...})                   # artifact.json: the commit marker

    As a context manager, a claimed writer whose block raises records the exception as
    the output's failure (``fail``) and lets it propagate; a block that ends normally must
    have committed or failed the output itself, else the output is marked failed and
    ``LeftUncommittedError`` raised (never a claimed directory left pending in silence).
    An unclaimed writer (a dry run) is left alone either way.
    """

    def __init__(self, root: str | os.PathLike, type: str, *, job: str, config: dict | None = None):
        if type not in FORMAT_VERSIONS:
            raise ValueError(f"unknown artifact type {type!r}; add it to FORMAT_VERSIONS")
        self.root = storage.locate(root).uri
        self.type = type
        self.job = job
        self.config = dict(config or {})
        self.schema: dict | None = None
        self.inputs: list[dict] = []
        self.lineage: list[dict] = []
        self.metrics: dict = {}
        self.timings: dict = {}
        self._t0 = time.time()
        self._started = _now()
        self._claimed = False
        self._ended = False

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self._claimed or self._ended:
            return False
        if exc is not None:
            self.fail(f"{exc_type.__name__}: {exc}")
            return False
        reason = "the job ended without committing or failing its output"
        self.fail(reason)
        raise LeftUncommittedError(f"{self.root}: {reason}")

    def claim(self, *, overwrite: bool = False, resume: bool = False) -> None:
        claim_output(self.root, job=self.job, overwrite=overwrite, resume=resume)
        self._claimed = True

    def fail(self, reason: str) -> None:
        self._ended = True
        mark_failed(self.root, self.job, reason)

    def input_artifact(self, role: str, uri: str, expected_type: str | None = None, *,
                       registered: dict | None = None) -> Manifest:
        """Records a committed upstream artifact (by URI and content digest); a model read
        through the registry also records the version it resolved to (``registered``:
        ``mlbatch.artifacts.registry.RegisteredVersion.record()``)."""
        m = read_manifest(uri, expected_type)
        entry = {"role": role, "kind": "artifact", "type": m.type, "uri": m.root,
                 "digest": m.digest}
        if registered:
            entry["registered"] = dict(registered)
        self.inputs.append(entry)
        self.lineage.append({**entry, "lineage": m.doc.get("lineage", [])})
        return m

    def input_file(self, role: str, uri: str, *, sha256: str | None = None,
                   size: int | None = None) -> dict:
        """Records a raw input file by URI, size and content hash."""
        uri = storage.locate(uri).uri
        entry = {"role": role, "kind": "file", "uri": uri,
                 "size": storage.size(uri) if size is None else int(size),
                 "sha256": sha256 or storage.sha256(uri)}
        self.inputs.append(entry)
        self.lineage.append(dict(entry))
        return entry

    def set_schema(self, name: str, version: Any, uri: str) -> None:
        self.schema = {"name": name, "version": version, "uri": storage.locate(uri).uri,
                       "sha256": storage.sha256(uri)}
        self.inputs.append({"role": "schema", "kind": "file", "uri": self.schema["uri"],
                            "size": storage.size(uri), "sha256": self.schema["sha256"]})
        self.lineage.append(dict(self.inputs[-1]))

    def commit(self, *, body: dict | None = None, rows: dict | None = None,
               digest_excludes: tuple[str, ...] = ()) -> Manifest:
        """Hashes the outputs and writes ``artifact.json`` atomically; then removes the
        pending marker. Returns the committed manifest."""
        files = scan_outputs(self.root, digest_excludes)
        finished = time.time()
        doc = {
            "type": self.type,
            "format_version": FORMAT_VERSIONS[self.type],
            "producer": {"job": self.job, "package": "mlbatch", "version": package_version(),
                         "git_commit": git_commit()},
            "config": self.config,
            "schema": self.schema,
            "inputs": self.inputs,
            "outputs": {"files": files, "rows": dict(rows or {}),
                        "digest_excludes": list(digest_excludes)},
            "digest": digest_of(files),
            "metrics": self.metrics,
            "timings": {"started": self._started, "finished": _now(),
                        "wall_s": round(finished - self._t0, 3), **self.timings},
            "lineage": self.lineage,
            self.type: dict(body or {}),
        }
        storage.write_text(storage.join(self.root, MANIFEST),
                           json.dumps(doc, indent=2, sort_keys=False, default=_json_default))
        pending = storage.join(self.root, PENDING)
        if storage.exists(pending):
            storage.delete(pending)
        lock.release(self.root)
        self._ended = True
        return Manifest(root=self.root, doc=doc)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(uri: str, doc: Any) -> None:
    """The one JSON writer of every job (atomic locally; any file system)."""
    storage.write_text(uri, json.dumps(doc, indent=2, sort_keys=True, default=_json_default))


def read_json(uri: str) -> Any:
    return json.loads(storage.read_text(uri))
