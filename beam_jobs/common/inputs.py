"""The one input check of every Beam job: on the driver, before anything runs, which
files an ``--input`` pattern (a path, glob or ``gs://`` prefix) names, through Beam's
FileSystems, so local paths and Cloud Storage behave alike.

A remote check is bounded in time: Beam's GCS client retries an unreachable host for
minutes, silently; here it is given up after ``MLBATCH_GCS_TIMEOUT_S`` seconds (default
30) with a ``StorageError`` naming what it tried to reach.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from apache_beam.io.filesystems import FileSystems

from mlbatch import storage
from mlbatch.errors import UsageError

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


class InputError(ValueError, UsageError):
    """An input cannot be used as given: it names no file, cannot be listed, or a file
    lacks what the job needs (the message names the input and the cause)."""


def is_glob(uri: str) -> bool:
    return any(c in uri for c in "*?[")


def bounded(what: str, uri: str, fn: Callable[[], T]) -> T:
    """fn() for a local path; for a remote one, in a daemon thread given up after
    MLBATCH_GCS_TIMEOUT_S seconds, raising a StorageError that names the URI."""
    if not storage.is_remote(uri):
        return fn()
    timeout = float(os.environ.get(storage.GCS_TIMEOUT_ENV, "30"))
    done: queue.Queue = queue.Queue(maxsize=1)

    def call():
        try:
            done.put((True, fn()))
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            done.put((False, e))

    threading.Thread(target=call, name=f"check {uri}", daemon=True).start()
    try:
        ok, value = done.get(timeout=timeout)
    except queue.Empty:
        host = os.environ.get(storage.EMULATOR_ENV)
        via = f" via {storage.EMULATOR_ENV}={host}" if host else ""
        raise storage.StorageError(
            f"{what}: no answer from Cloud Storage{via} within {timeout:g} s for {uri} "
            f"(network, credentials or emulator down? {storage.GCS_TIMEOUT_ENV} sets the "
            f"limit)") from None
    if not ok:
        raise value
    return value


def match_files(pattern: str, *, flag: str = "--input") -> list[tuple[str, int]]:
    """(path, size) of every file ``pattern`` matches, sorted; [] when none does.

    Raises:
      InputError: the pattern cannot be listed (e.g. an invalid bucket name), naming it.
      mlbatch.storage.StorageError: a remote listing got no answer in time.
    """
    def match():
        try:
            found = FileSystems.match([pattern])[0].metadata_list
        except (OSError, ValueError) as err:  # BeamIOError is an OSError
            raise InputError(f"{flag} {pattern!r} cannot be listed: {err}") from err
        return sorted((m.path, int(m.size_in_bytes)) for m in found)
    return bounded("listing input files", pattern, match)


def require_files(pattern: str, *, flag: str = "--input") -> list[tuple[str, int]]:
    """match_files, refusing a pattern that matches nothing (InputError naming it)."""
    found = match_files(pattern, flag=flag)
    if not found:
        raise InputError(f"{flag} {pattern!r} matches no files")
    return found


def names_files(input_root: str) -> bool:
    """Whether --input names files itself (a glob or a single file) rather than a
    directory or gs:// prefix holding each table's files."""
    if is_glob(input_root):
        return True
    if not storage.is_remote(input_root):
        return os.path.isfile(input_root)
    if input_root.endswith("/"):
        return False
    return [path for path, _ in match_files(input_root)] == [input_root]


class InputChangedError(InputError):
    """An input file changed (or went away) while a job was reading it: its outputs
    would mix two versions of the file (the message names it and what changed)."""


def _stat(path: str) -> tuple[int, float] | None:
    """(size, last modified) of one file, None when it is gone."""
    try:
        found = FileSystems.match([path])[0].metadata_list
    except OSError:  # BeamIOError: no such file
        return None
    meta = [m for m in found if m.path == path]
    if not meta:
        return None
    return int(meta[0].size_in_bytes), float(meta[0].last_updated_in_seconds)


def pin_files(paths: list[str]) -> dict[str, tuple[int, float]]:
    """Each file's (size, last modified) now: the state a job must find them in until it
    commits (check_pins)."""
    pins = {}
    for path in paths:
        st = bounded("pinning input files", path, lambda p=path: _stat(p))
        if st is None:
            raise InputChangedError(f"input file {path} went away before the job started")
        pins[path] = st
    return pins


def check_pins(pins: dict[str, tuple[int, float]], when: str) -> None:
    """Raises InputChangedError naming every pinned file that changed size or
    modification time, or went away, since pin_files (`when`: e.g. "before pass 2")."""
    changed = []
    for path, (size, mtime) in pins.items():
        now = bounded("checking input files", path, lambda p=path: _stat(p))
        if now is None:
            changed.append(f"{path}: deleted")
        elif now != (size, mtime):
            changed.append(f"{path}: size {size} -> {now[0]} bytes, modified "
                           f"{mtime:.6f} -> {now[1]:.6f}")
    if changed:
        raise InputChangedError(
            f"input files changed while the job read them ({when}); nothing is committed, "
            f"rerun on a stable copy:\n  " + "\n  ".join(changed))
