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

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


class InputError(ValueError):
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
