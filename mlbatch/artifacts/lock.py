"""One writer per directory: the exclusive lock every output and run directory takes.

The lock is a file ``.mlbatch.lock`` in the directory (a dot file: outside every digest)
holding its holder ``{pid, host, job, started, token}``, so a refusal names who holds it.

* Local: the file is created if needed and held with ``fcntl.flock`` for as long as the
  holder lives; the kernel drops the lock when the holder dies, however it dies, so a
  lock left by a dead process is recovered by the next claimant (it logs whose it was).
* ``gs://``: an object created only if absent (``if_generation_match=0``); the holder
  rewrites it every third of its lease (a heartbeat, each write conditioned on the
  generation it last wrote). A lock is stale when its holder ran on this host and its pid
  is gone, or when it was not rewritten for longer than its declared lease
  (``MLBATCH_LOCK_LEASE_S``, default 300 s). The local storage emulator ignores
  generation preconditions, so there a claim also checks before writing and reads its
  token back after; on Cloud Storage the precondition is what makes it exclusive.

A process holds a directory once: claiming it again from the same process is a no-op.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import uuid

from mlbatch import storage
from mlbatch.artifacts.manifest import ArtifactError

LOGGER = logging.getLogger(__name__)

LOCK = ".mlbatch.lock"
LEASE_ENV = "MLBATCH_LOCK_LEASE_S"
_HELD: dict[str, "_Held"] = {}  # directory URI -> this process's lock on it


class LockedError(ArtifactError):
    """Another live process holds the directory's lock (the message names it)."""


class _Held:
    def __init__(self, uri: str, doc: dict, fd: int | None = None, blob=None):
        self.uri, self.doc, self.fd, self.blob = uri, doc, fd, blob
        self.stop = threading.Event()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def lease_s() -> float:
    return float(os.environ.get(LEASE_ENV, "300"))


def _holder_doc(job: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "job": job, "started": _now(),
            "lease_s": lease_s(), "token": uuid.uuid4().hex}


def describe(doc: dict) -> str:
    return (f"{doc.get('job', '?')} (pid {doc.get('pid', '?')} on {doc.get('host', '?')}, "
            f"since {doc.get('started', '?')})")


def _refusal(root: str, doc: dict) -> LockedError:
    return LockedError(f"{root} is locked by {describe(doc)}: another run writes there; "
                       f"wait for it to end or choose another directory (lock: "
                       f"{storage.join(root, LOCK)})")


def acquire(root: str, job: str) -> None:
    """Takes the exclusive lock of directory ``root`` (creating the directory when local);
    raises LockedError naming the live holder."""
    root = storage.locate(root).uri
    if root in _HELD:
        return
    doc = _holder_doc(job)
    held = _acquire_gcs(root, doc) if storage.is_remote(root) else _acquire_local(root, doc)
    _HELD[root] = held


def release(root: str) -> None:
    """Gives the lock of ``root`` back (no-op when this process does not hold it)."""
    held = _HELD.pop(storage.locate(root).uri, None)
    if held is None:
        return
    held.stop.set()
    if held.fd is not None:
        try:
            os.unlink(storage.join(held.uri, LOCK))
        except OSError:
            pass
        os.close(held.fd)  # closing drops the flock
    elif held.blob is not None:
        _delete_blob(held)


def holder(root: str) -> dict | None:
    """The holder recorded in ``root``'s lock file, or None without one."""
    try:
        return json.loads(storage.read_text(storage.join(root, LOCK)))
    except (storage.StorageError, ValueError):
        return None


# --- local: flock ----------------------------------------------------------------------------
def _acquire_local(root: str, doc: dict) -> _Held:
    path = storage.join(root, LOCK)
    os.makedirs(root, exist_ok=True)  # OSError (read-only, under a file): the caller names it
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise _refusal(root, holder(root) or {}) from None
        if _same_file(fd, path):
            break
        os.close(fd)  # the file was removed by its releasing holder meanwhile: again
    old = os.read(fd, 1 << 16)
    if old.strip():
        LOGGER.warning("%s: recovering a stale lock: its holder %s is gone", root,
                       describe(_loads(old)))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(doc).encode(), 0)
    return _Held(root, doc, fd=fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return os.fstat(fd).st_ino == st.st_ino


def _loads(data: bytes) -> dict:
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# --- gs://: a generation-conditioned object with a heartbeat ---------------------------------
def _blob(uri: str):
    from google.cloud import storage as gcs

    bucket, _, key = uri[len("gs://"):].partition("/")
    kwargs = {"project": os.environ.get("GOOGLE_CLOUD_PROJECT") or "mlbatch"}
    if os.environ.get(storage.EMULATOR_ENV):
        from google.auth.credentials import AnonymousCredentials
        kwargs["credentials"] = AnonymousCredentials()
    return gcs.Client(**kwargs).bucket(bucket).blob(key)


def is_stale(doc: dict, age_s: float) -> bool:
    """Whether a recorded holder is gone: same host and dead pid, or a lease run out."""
    if doc.get("host") == socket.gethostname() and isinstance(doc.get("pid"), int):
        if not pid_alive(doc["pid"]):
            return True
    return age_s > float(doc.get("lease_s", lease_s()))


def _bounded() -> dict:
    """Timeout and retry deadline of every lock call: ``MLBATCH_GCS_TIMEOUT_S`` (as the
    storage module's own calls)."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    seconds = float(os.environ.get(storage.GCS_TIMEOUT_ENV, "30"))
    return {"timeout": seconds, "retry": DEFAULT_RETRY.with_timeout(seconds)}


def _acquire_gcs(root: str, doc: dict) -> _Held:
    """The gs:// lock; StorageError naming the lock when Cloud Storage does not answer."""
    import requests
    from google.api_core import exceptions

    try:
        return _acquire_gcs_once(root, doc)
    except (exceptions.GoogleAPIError, requests.exceptions.RequestException) as e:
        raise storage.StorageError(f"cannot take the lock {storage.join(root, LOCK)}: "
                                   f"{type(e).__name__}: {e}") from e


def _acquire_gcs_once(root: str, doc: dict) -> _Held:
    from google.api_core import exceptions

    blob, kw = _blob(storage.join(root, LOCK)), _bounded()
    for _ in range(2):
        if blob.exists(**kw):
            blob.reload(**kw)
            old = _loads(blob.download_as_bytes(**kw))
            age = (datetime.datetime.now(datetime.timezone.utc) - blob.updated).total_seconds()
            if not is_stale(old, age):
                raise _refusal(root, old)
            LOGGER.warning("%s: recovering a stale lock of %s (%.0f s old)", root,
                           describe(old), age)
            try:
                blob.delete(if_generation_match=blob.generation, **kw)
            except exceptions.NotFound:
                pass
        try:
            blob.upload_from_string(json.dumps(doc), if_generation_match=0, **kw)
        except exceptions.PreconditionFailed:
            continue  # someone created it between our check and our write
        blob.reload(**kw)
        mine = _loads(blob.download_as_bytes(**kw))
        if mine.get("token") != doc["token"]:
            raise _refusal(root, mine)
        held = _Held(root, doc, blob=blob)
        threading.Thread(target=_heartbeat, args=(held,), daemon=True,
                         name=f"lock-heartbeat {root}").start()
        return held
    raise _refusal(root, holder(root) or {})


def _heartbeat(held: _Held) -> None:
    every = max(1.0, float(held.doc["lease_s"]) / 3)
    while not held.stop.wait(every):
        try:
            held.blob.upload_from_string(json.dumps(held.doc),
                                         if_generation_match=held.blob.generation, **_bounded())
        except Exception as e:  # noqa: BLE001 - the heartbeat says why it missed, and goes on
            LOGGER.warning("%s: lock heartbeat failed: %s", held.uri, e)


def _delete_blob(held: _Held) -> None:
    from google.api_core import exceptions

    try:
        held.blob.delete(if_generation_match=held.blob.generation, **_bounded())
    except exceptions.GoogleAPIError as e:
        LOGGER.warning("%s: could not remove the lock: %s", held.uri, e)


def held_here(root: str) -> bool:
    return storage.locate(root).uri in _HELD

