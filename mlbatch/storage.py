"""One way to reach files for every job: local paths and ``gs://`` URIs alike.

Both halves of the project (Beam jobs, Ray jobs) read and write artifacts through
pyarrow's file systems, resolved from a URI here:

* a plain path or ``file://`` URI -> ``pyarrow.fs.LocalFileSystem``;
* ``gs://bucket/path`` -> ``pyarrow.fs.GcsFileSystem``. When ``STORAGE_EMULATOR_HOST``
  is set (the variable Beam's GCS file system and Google's clients follow), the file
  system talks to that emulator anonymously over plain HTTP, so every ``gs://`` path
  works offline against a local emulator.

A process on another machine (a Ray worker) reaches the same place when it has the same
``worker_env()``: the emulator's address and the timeout, when set here. Real Cloud
Storage needs nothing passed: every process uses its own credentials.

Remote calls are bounded: the GCS client gives up retrying after
``MLBATCH_GCS_TIMEOUT_S`` seconds (default 30) and the error names what it tried to
reach, instead of hanging.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import pyarrow.fs as pafs

from mlbatch.errors import UsageError

GCS_TIMEOUT_ENV = "MLBATCH_GCS_TIMEOUT_S"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_BLOCK = 1 << 20
WORKER_ENV = (EMULATOR_ENV, GCS_TIMEOUT_ENV)  # what decides where gs:// goes, and how long


class StorageError(OSError, UsageError):
    """A path cannot be reached or read; the message names the path and the cause."""


class Location(NamedTuple):
    """A URI resolved to a pyarrow file system and the path inside it."""
    fs: pafs.FileSystem
    path: str  # no scheme; for GCS "bucket/key"
    uri: str  # the canonical URI ("/abs/path" or "gs://bucket/key")

    def join(self, *parts: str) -> "Location":
        path = posixpath.join(self.path, *parts)
        return Location(self.fs, path, _uri(self.fs, path))


def is_remote(uri: str) -> bool:
    return str(uri).startswith("gs://")


def worker_env() -> dict[str, str]:
    """The variables of WORKER_ENV set in this process: what a worker process elsewhere
    needs to reach ``gs://`` as this one does (empty when nothing is set)."""
    return {k: os.environ[k] for k in WORKER_ENV if os.environ.get(k)}


def _gcs() -> pafs.GcsFileSystem:
    timeout = datetime.timedelta(seconds=float(os.environ.get(GCS_TIMEOUT_ENV, "30")))
    host = os.environ.get(EMULATOR_ENV)
    if host:
        scheme, _, endpoint = host.rpartition("://")
        return pafs.GcsFileSystem(anonymous=True, endpoint_override=endpoint,
                                  scheme=scheme or "http", retry_time_limit=timeout)
    return pafs.GcsFileSystem(retry_time_limit=timeout)


def _uri(fs: pafs.FileSystem, path: str) -> str:
    return f"gs://{path}" if isinstance(fs, pafs.GcsFileSystem) else path


def locate(uri: str | os.PathLike) -> Location:
    """The file system and inner path of a URI (local paths become absolute)."""
    uri = os.fspath(uri)
    if is_remote(uri):
        path = uri[len("gs://"):].rstrip("/")
        return Location(_gcs(), path, f"gs://{path}")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    path = os.path.abspath(os.path.expanduser(uri))
    return Location(pafs.LocalFileSystem(), path, path)


def join(uri: str, *parts: str) -> str:
    """``uri`` joined with relative posix parts, keeping its scheme."""
    if is_remote(uri):
        return posixpath.join(str(uri).rstrip("/"), *parts)
    return os.path.join(os.fspath(uri), *parts)


def _info(loc: Location) -> pafs.FileInfo:
    try:
        return loc.fs.get_file_info(loc.path)
    except OSError as e:
        raise StorageError(f"cannot reach {loc.uri}: {e}") from e


def exists(uri: str) -> bool:
    return _info(locate(uri)).type != pafs.FileType.NotFound


def is_file(uri: str) -> bool:
    return _info(locate(uri)).type == pafs.FileType.File


def is_dir(uri: str) -> bool:
    """True for a local directory; for GCS, also for a prefix that holds objects."""
    loc = locate(uri)
    kind = _info(loc).type
    if kind == pafs.FileType.Directory:
        return True
    if kind == pafs.FileType.NotFound and isinstance(loc.fs, pafs.GcsFileSystem):
        return bool(list_files(uri, limit=1))
    return False


def size(uri: str) -> int:
    info = _info(locate(uri))
    if info.type != pafs.FileType.File:
        raise StorageError(f"{uri} is not a file")
    return int(info.size)


class FileEntry(NamedTuple):
    relpath: str  # posix, relative to the listed directory
    size: int


def list_files(uri: str, *, limit: int | None = None) -> list[FileEntry]:
    """Every file under a directory (recursively), sorted by relative path."""
    loc = locate(uri)
    selector = pafs.FileSelector(loc.path, recursive=True, allow_not_found=True)
    try:
        infos = loc.fs.get_file_info(selector)
    except OSError as e:
        raise StorageError(f"cannot list {loc.uri}: {e}") from e
    prefix = loc.path.rstrip("/") + "/"
    out = sorted(FileEntry(i.path[len(prefix):], int(i.size)) for i in infos
                 if i.type == pafs.FileType.File and i.path.startswith(prefix))
    return out[:limit] if limit is not None else out


def read_bytes(uri: str) -> bytes:
    loc = locate(uri)
    try:
        with loc.fs.open_input_stream(loc.path) as f:
            return f.read()
    except FileNotFoundError as e:
        raise StorageError(f"{loc.uri} does not exist") from e
    except OSError as e:
        raise StorageError(f"cannot read {loc.uri}: {e}") from e


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes, *, atomic: bool = True) -> None:
    """Writes a whole file. Locally through a temporary name and a rename, so readers
    never see half a file; a GCS object only becomes visible once complete anyway."""
    loc = locate(uri)
    parent = posixpath.dirname(loc.path)
    try:
        if not isinstance(loc.fs, pafs.GcsFileSystem):
            loc.fs.create_dir(parent, recursive=True)
        if atomic and isinstance(loc.fs, pafs.LocalFileSystem):
            tmp = posixpath.join(parent, f".{posixpath.basename(loc.path)}.{uuid.uuid4().hex}.tmp")
            with loc.fs.open_output_stream(tmp) as f:
                f.write(data)
            os.replace(tmp, loc.path)
            return
        with loc.fs.open_output_stream(loc.path) as f:
            f.write(data)
    except OSError as e:
        raise StorageError(f"cannot write {loc.uri}: {e}") from e


def write_text(uri: str, text: str, *, atomic: bool = True) -> None:
    write_bytes(uri, text.encode("utf-8"), atomic=atomic)


def delete(uri: str) -> None:
    """Deletes a file or a whole directory tree; nothing there is not an error."""
    loc = locate(uri)
    kind = _info(loc).type
    try:
        if kind == pafs.FileType.File:
            loc.fs.delete_file(loc.path)
        elif kind == pafs.FileType.Directory:
            loc.fs.delete_dir(loc.path)
        elif isinstance(loc.fs, pafs.GcsFileSystem):  # a prefix without a directory marker
            for entry in list_files(uri):
                loc.fs.delete_file(posixpath.join(loc.path, entry.relpath))
    except OSError as e:
        raise StorageError(f"cannot delete {loc.uri}: {e}") from e


def makedirs(uri: str) -> None:
    loc = locate(uri)
    if isinstance(loc.fs, pafs.GcsFileSystem):
        return  # GCS has no directories: prefixes appear with their first object
    loc.fs.create_dir(loc.path, recursive=True)


def copy_tree(src: str, dst: str) -> None:
    """Copies every file under ``src`` to the same relative path under ``dst`` (any
    file systems, e.g. local -> gs://)."""
    s, d = locate(src), locate(dst)
    for entry in list_files(src):
        target = posixpath.join(d.path, entry.relpath)
        if not isinstance(d.fs, pafs.GcsFileSystem):
            d.fs.create_dir(posixpath.dirname(target), recursive=True)
        pafs.copy_files(posixpath.join(s.path, entry.relpath), target,
                        source_filesystem=s.fs, destination_filesystem=d.fs)


def iter_blocks(uri: str, block: int = _BLOCK) -> Iterator[bytes]:
    loc = locate(uri)
    try:
        with loc.fs.open_input_stream(loc.path) as f:
            while chunk := f.read(block):
                yield chunk
    except OSError as e:
        raise StorageError(f"cannot read {loc.uri}: {e}") from e


def sha256(uri: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    for chunk in iter_blocks(uri):
        h.update(chunk)
    return h.hexdigest()
