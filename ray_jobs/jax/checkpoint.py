"""Portable checkpoints: one ``.npz`` (no pickle) per checkpoint, written atomically.

A checkpoint holds every array of the train state under a readable path
(``params/deep/embed/<feature>``, ``opt_state/0/mu/...``, ``step``) plus ``__meta__``,
a JSON string with the data position (epoch, step in epoch), the early-stopping state,
the curves so far and the config that produced it. Arrays are stored whole (unsharded),
so a checkpoint restores onto any mesh. ``np.load(path)`` reads it anywhere.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from mlbatch import storage
from mlbatch.errors import UsageError

META_KEY = "__meta__"
_NAME = re.compile(r"^ckpt-(\d{9})\.npz$")


class CheckpointError(ValueError, UsageError):
    """A checkpoint does not fit the run that wants to restore it."""


def path_keys(path) -> tuple:
    """A pytree key path as plain names/indices: ('deep', 'hidden', 0, 'w')."""
    out = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                out.append(getattr(k, attr))
                break
        else:
            raise TypeError(f"unsupported pytree key {k!r}")
    return tuple(out)


def flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join([prefix, *map(str, path_keys(p))]): np.asarray(v) for p, v in leaves}


def unflatten_like(template: Any, arrays: dict[str, np.ndarray], prefix: str) -> Any:
    """Arrays in the structure of ``template``; names and shapes must match exactly."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, like in leaves:
        name = "/".join([prefix, *map(str, path_keys(path))])
        if name not in arrays:
            raise CheckpointError(f"checkpoint has no array {name!r} (a different model?)")
        a = arrays[name]
        if tuple(a.shape) != tuple(like.shape):
            raise CheckpointError(f"checkpoint array {name!r} has shape {a.shape}, the model "
                                  f"expects {tuple(like.shape)}")
        out.append(a.astype(like.dtype, copy=False))
    return jax.tree_util.tree_unflatten(treedef, out)


def encode(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{META_KEY: np.array(json.dumps(meta))})
    return buf.getvalue()


def decode(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != META_KEY}
        meta = json.loads(str(z[META_KEY]))
    return arrays, meta


def read_meta(blob: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return json.loads(str(z[META_KEY]))


def write_atomic(path: str | Path, blob: bytes) -> None:
    """Local paths: a temp file in the same directory, fsync, then rename over ``path``.
    ``gs://`` URIs: one object upload (an object is only visible once complete)."""
    if storage.is_remote(str(path)):
        storage.write_bytes(str(path), blob)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CheckpointDir:
    """``<dir>/ckpt-<step>.npz`` (a local path or ``gs://`` URI); the newest complete
    file is the one to resume from."""

    def __init__(self, root: str | Path, keep: int):
        self.root, self.keep = storage.locate(root).uri, keep

    def steps(self) -> list[int]:
        return sorted(int(m.group(1)) for f in storage.list_files(self.root)
                      if (m := _NAME.match(f.relpath)))

    def path(self, step: int) -> str:
        return storage.join(self.root, f"ckpt-{step:09d}.npz")

    def save(self, step: int, blob: bytes) -> str:
        path = self.path(step)
        write_atomic(path, blob)
        for old in self.steps()[: -self.keep]:
            storage.delete(self.path(old))
        return path

    def latest(self) -> bytes | None:
        steps = self.steps()
        return storage.read_bytes(self.path(steps[-1])) if steps else None
