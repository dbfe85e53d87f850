"""The artifact contract shared by every job: ``artifact.json``, read back and verified.

Every job's output directory is an *artifact*. While a job runs, the directory holds a
``_PENDING.json`` marker; the job's last act is writing ``artifact.json`` (atomically),
which is the commit marker: a directory without it holds nothing anyone may read, and
every reader refuses it, naming why (the marker says whether the run failed and how).

``artifact.json``::

    type, format_version ("major.minor"), producer {job, package, version, git_commit},
    config (the job's effective configuration), schema {name, version, sha256} | null,
    inputs [{role, kind: artifact|file, uri, type?, digest? | sha256 + size}],
    outputs {files: [{path, size, sha256, rows?}], rows: {...}},
    digest ("sha256:..." over the output files' relative paths and hashes),
    metrics, timings {started, finished, wall_s, ...},
    lineage [input nodes, each artifact node carrying its own upstream lineage],
    <type>: the type's own section (e.g. "features": label, features, splits)

Paths inside are relative to the directory, so a committed directory can be moved or
copied (also to ``gs://``) and still be read. An artifact's identity is its ``digest``:
the content of its files, never its path, a run id or a timestamp.

Readers accept the same major ``format_version`` and any minor one (minor versions only
add fields); an unknown major version is refused.

The writer (``ArtifactWriter``, the output guard, the JSON writer) is in ``base``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import logging
import os
import re
from typing import NamedTuple

from mlbatch import storage
from mlbatch.errors import UsageError

LOGGER = logging.getLogger(__name__)

MANIFEST = "artifact.json"
PENDING = "_PENDING.json"
_NEVER_DIGESTED = (MANIFEST, PENDING)

# The current format version of every artifact type. A reader accepts its major version.
FORMAT_VERSIONS: dict[str, str] = {
    "features": "1.0",
    "cooccurrence": "1.0",
    "cooccurrence_evaluation": "1.0",
    "xgboost_model": "1.0",
    "jax_model": "1.0",
    "tune_run": "1.0",
    "predictions": "1.0",
    "evaluation": "1.0",
    "monitor": "1.0",
    "run_report": "1.0",
    "model_evaluation": "1.0",
}


class ArtifactError(ValueError, UsageError):
    """A directory cannot be read as the artifact asked for (the message says why)."""


class UncommittedError(ArtifactError):
    """The directory has no ``artifact.json``: its run failed, was killed or still runs."""


class FormatVersionError(ArtifactError):
    """The artifact was written in a major format version this code cannot read."""


class IntegrityError(ArtifactError):
    """A committed artifact's files are not the ones its ``artifact.json`` records: changed,
    missing, added, or reached through a link out of the directory (the message names it)."""


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A committed artifact, as read back from its ``artifact.json``."""
    root: str  # where it was read from (not stored: the directory may move)
    doc: dict

    @property
    def type(self) -> str:
        return self.doc["type"]

    @property
    def format_version(self) -> str:
        return self.doc["format_version"]

    @property
    def digest(self) -> str:
        return self.doc["digest"]

    @property
    def body(self) -> dict:
        """The type's own section."""
        return self.doc.get(self.type, {})

    @property
    def config(self) -> dict:
        return self.doc.get("config", {})

    @property
    def inputs(self) -> list[dict]:
        return self.doc.get("inputs", [])

    @property
    def metrics(self) -> dict:
        return self.doc.get("metrics", {})

    @property
    def files(self) -> list[dict]:
        return self.doc["outputs"]["files"]

    @property
    def rows(self) -> dict:
        return self.doc["outputs"].get("rows", {})

    def path(self, relpath: str) -> str:
        """URI of a file of this artifact."""
        return storage.join(self.root, relpath)

    def input(self, role: str) -> dict:
        for entry in self.inputs:
            if entry["role"] == role:
                return entry
        raise ArtifactError(f"{self.root}: no input with role {role!r} "
                            f"(roles: {[e['role'] for e in self.inputs]})")


def _major(version: str) -> int:
    try:
        return int(str(version).split(".", 1)[0])
    except ValueError:
        raise FormatVersionError(f"format_version {version!r} is not 'major.minor'") from None


def pending_state(root: str) -> dict | None:
    """The ``_PENDING.json`` marker of an uncommitted directory, or None."""
    uri = storage.join(root, PENDING)
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_text(uri))
    except (ValueError, storage.StorageError):
        return {"job": "?", "failure": "unreadable _PENDING.json marker"}


def read_manifest(root: str | os.PathLike, expected_type: str | None = None) -> Manifest:
    """Reads a committed artifact; refuses, naming the cause, a directory that does not
    exist, is uncommitted, is of another type or of an unknown major format version, or
    whose files are not the ones it recorded (``check_integrity``: every reader's one
    verification)."""
    root = storage.locate(root).uri
    uri = storage.join(root, MANIFEST)
    what = f"{expected_type} artifact" if expected_type else "artifact"
    if not storage.exists(uri):
        if not storage.is_dir(root):
            raise ArtifactError(f"{what} {root} does not exist")
        state = pending_state(root)
        if state is None:
            raise UncommittedError(
                f"{root} has no {MANIFEST}: it is not a committed {what} (a job's output "
                f"is readable only once the job has committed it)")
        if state.get("failure"):
            raise UncommittedError(f"{root} is uncommitted: the {state.get('job', '?')} run "
                                   f"that wrote it failed: {state['failure']}")
        raise UncommittedError(
            f"{root} is uncommitted: a {state.get('job', '?')} run started at "
            f"{state.get('started', '?')} has not committed it (still running, or killed)")
    try:
        doc = json.loads(storage.read_text(uri))
    except ValueError as e:
        raise ArtifactError(f"{uri}: not valid JSON ({e})") from e
    for key in ("type", "format_version", "digest", "outputs"):
        if key not in doc:
            raise ArtifactError(f"{uri}: field {key!r} is missing")
    if expected_type is not None and doc["type"] != expected_type:
        raise ArtifactError(f"{root} is a {doc['type']!r} artifact, not {expected_type!r}")
    known = FORMAT_VERSIONS.get(doc["type"])
    if known is None:
        raise ArtifactError(f"{uri}: unknown artifact type {doc['type']!r}")
    if _major(doc["format_version"]) != _major(known):
        raise FormatVersionError(
            f"{uri}: {doc['type']} format_version {doc['format_version']} is not readable by "
            f"this version of mlbatch (it reads {_major(known)}.x); rebuild the artifact or "
            f"use a matching mlbatch")
    manifest = Manifest(root=root, doc=doc)
    check_integrity(manifest)
    return manifest


# --- digests -------------------------------------------------------------------------------
def digest_of(entries: list[dict]) -> str:
    """The content digest of an artifact: SHA-256 over its files' paths and hashes."""
    canon = json.dumps(sorted([e["path"], e["sha256"]] for e in entries), separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


def _digested(relpath: str, excludes: tuple[str, ...]) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    if relpath in _NEVER_DIGESTED or name.startswith(".") or name.endswith(".tmp"):
        return False
    return not any(fnmatch.fnmatch(relpath, pat) for pat in excludes)


def _parquet_rows(uri: str) -> int | None:
    import pyarrow.parquet as pq

    loc = storage.locate(uri)
    try:
        with loc.fs.open_input_file(loc.path) as f:
            return pq.ParquetFile(f).metadata.num_rows
    except Exception:  # noqa: BLE001 - an unreadable footer is reported as no row count
        return None


def scan_outputs(root: str, excludes: tuple[str, ...] = ()) -> list[dict]:
    """Every digested file under root: relative path, size, SHA-256 (and Parquet rows)."""
    entries = []
    for f in storage.list_files(root):
        if not _digested(f.relpath, excludes):
            continue
        uri = storage.join(root, f.relpath)
        entry = {"path": f.relpath, "size": f.size, "sha256": storage.sha256(uri)}
        if f.relpath.endswith(".parquet"):
            entry["rows"] = _parquet_rows(uri)
        entries.append(entry)
    return entries


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_VERIFIED: dict[tuple, bool] = {}  # local files already hashed by this process, by stat


class _Recorded(NamedTuple):
    path: str
    size: int
    sha256: str


def _recorded_files(manifest: Manifest) -> list[_Recorded]:
    """The manifest's file list, checked for shape: relative paths inside the directory,
    integer sizes, 64-hex SHA-256s, and a digest field that is theirs."""
    uri = storage.join(manifest.root, MANIFEST)
    files = manifest.doc["outputs"].get("files") if isinstance(manifest.doc["outputs"],
                                                               dict) else None
    if not isinstance(files, list):
        raise IntegrityError(f"{uri}: field 'outputs.files' is missing or not a list")
    out = []
    for i, e in enumerate(files):
        where = f"{uri}: field 'outputs.files[{i}]'"
        if not isinstance(e, dict) or not isinstance(e.get("path"), str):
            raise IntegrityError(f"{where} has no path")
        path = e["path"]
        if path.startswith("/") or ".." in path.split("/") or "\\" in path or not path:
            raise IntegrityError(f"{where}: path {path!r} is not inside the artifact")
        if not isinstance(e.get("sha256"), str) or not _HEX64.match(e["sha256"]):
            raise IntegrityError(f"{where} ({path}): sha256 {e.get('sha256')!r} is not 64 "
                                 "hex digits")
        if not isinstance(e.get("size"), int):
            raise IntegrityError(f"{where} ({path}): size {e.get('size')!r} is not an integer")
        out.append(_Recorded(path, e["size"], e["sha256"]))
    digest = manifest.doc["digest"]
    if not isinstance(digest, str) or not re.match(r"^sha256:[0-9a-f]{64}$", digest):
        raise IntegrityError(f"{uri}: field 'digest' {digest!r} is not 'sha256:' and 64 hex "
                             "digits")
    if digest_of(files) != digest:
        raise IntegrityError(f"{uri}: field 'digest' does not match the recorded files")
    return out


def check_integrity(manifest: Manifest) -> None:
    """Refuses (IntegrityError, naming the file) a committed artifact whose files differ
    from what it recorded: a file changed (SHA-256), missing, of another size, added where
    a reader would pick it up (a digested name not in the list), or a link leading out of
    the directory. Local files already verified by this process are not hashed again
    while their size, mtime, ctime and inode stay the same."""
    recorded = _recorded_files(manifest)
    root = manifest.root
    excludes = tuple(manifest.doc["outputs"].get("digest_excludes") or ())
    present = {f.relpath: f.size for f in storage.list_files(root)}
    names = {r.path for r in recorded}
    extra = sorted(p for p in present if p not in names and _digested(p, excludes))
    if extra:
        raise IntegrityError(f"{root}: file {extra[0]} is not part of the committed artifact "
                             f"({len(extra)} unrecorded file(s)); it was added after the "
                             "commit: rebuild the artifact or remove it")
    real_root = None if storage.is_remote(root) else os.path.realpath(root)
    for r in recorded:
        if r.path not in present:
            raise IntegrityError(f"{root}: file {r.path} recorded in {MANIFEST} is missing")
        if present[r.path] != r.size:
            raise IntegrityError(f"{root}: file {r.path} is {present[r.path]} bytes, "
                                 f"{MANIFEST} records {r.size}: it changed after the commit")
        _check_file(root, real_root, r)


def _check_file(root: str, real_root: str | None, r: _Recorded) -> None:
    uri = storage.join(root, r.path)
    key = None
    if real_root is not None:
        real = os.path.realpath(uri)
        if os.path.commonpath([real, real_root]) != real_root:
            raise IntegrityError(f"{root}: file {r.path} is a link to {real}, outside the "
                                 "artifact")
        st = os.stat(real)
        key = (real, r.sha256, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if key in _VERIFIED:
            return
    if storage.sha256(uri) != r.sha256:
        raise IntegrityError(f"{root}: file {r.path} does not match the sha256 recorded in "
                             f"{MANIFEST}: it changed after the commit; rebuild the artifact")
    if key is not None:
        _VERIFIED[key] = True


def verify(manifest: Manifest) -> list[str]:
    """Problems found by re-hashing a committed artifact's files (empty: intact)."""
    problems = []
    for entry in manifest.files:
        uri = manifest.path(entry["path"])
        if not storage.exists(uri):
            problems.append(f"{entry['path']}: missing")
        elif storage.sha256(uri) != entry["sha256"]:
            problems.append(f"{entry['path']}: content differs from the recorded sha256")
    if digest_of(manifest.files) != manifest.digest:
        problems.append("digest does not match the recorded files")
    return problems
