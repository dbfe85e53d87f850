"""Search spaces declared in YAML, turned into Ray Tune domains.

One entry per hyperparameter::

    eta:              {loguniform: [0.01, 0.3]}
    max_depth:        {randint: [3, 11]}        # hi exclusive: 3..10
    subsample:        {uniform: [0.5, 1.0]}
    grow_policy:      {choice: [depthwise, lossguide]}
    max_bin:          256                       # a plain constant

Every error names the file and the entry.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ray import tune

from mlbatch.errors import UsageError

KINDS = ("uniform", "loguniform", "randint", "choice")


class SearchSpaceError(ValueError, UsageError):
    """A search-space file or entry is invalid (the message names it)."""


def load_space(path: str | Path) -> dict[str, Any]:
    """Reads a YAML search-space file into ``{name: tune domain or constant}`` (YAML 1.2
    numbers: ``1e-3`` is a float, see ``mlbatch.config``)."""
    from mlbatch.config import ConfigError, load_file

    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"search space file {path} does not exist")
    try:
        doc = load_file(path, flag="--search-space")
    except ConfigError as e:
        raise SearchSpaceError(str(e)) from e
    return parse_space(doc, source=str(path))


def parse_space(doc: Any, source: str = "<search space>") -> dict[str, Any]:
    if not isinstance(doc, dict) or not doc:
        raise SearchSpaceError(f"{source}: expected a non-empty mapping of "
                               "hyperparameter -> {uniform|loguniform|randint|choice: ...}")
    return {str(name): parse_entry(name, spec, source) for name, spec in doc.items()}


def parse_entry(name: str, spec: Any, source: str = "<search space>") -> Any:
    where = f"{source}: entry {name!r}"
    if not isinstance(spec, dict):
        if isinstance(spec, list):
            raise SearchSpaceError(f"{where}: a bare list is ambiguous; write "
                                   f"{{choice: {spec}}} to search over it")
        return spec  # a constant
    if len(spec) != 1:
        raise SearchSpaceError(f"{where}: expected exactly one of {KINDS}, got {list(spec)}")
    kind, args = next(iter(spec.items()))
    if kind not in KINDS:
        raise SearchSpaceError(f"{where}: unknown distribution {kind!r}; expected one of {KINDS}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SearchSpaceError(f"{where}: choice needs a non-empty list, got {args!r}")
        return tune.choice(args)
    lo, hi = _bounds(where, kind, args)
    if kind == "uniform":
        return tune.uniform(lo, hi)
    if kind == "loguniform":
        if lo <= 0:
            raise SearchSpaceError(f"{where}: loguniform needs 0 < lo, got lo={lo}")
        return tune.loguniform(lo, hi)
    if not (float(lo).is_integer() and float(hi).is_integer()):
        raise SearchSpaceError(f"{where}: randint bounds must be integers, got {args!r}")
    if hi - lo < 1:
        raise SearchSpaceError(f"{where}: randint [lo, hi) needs hi > lo, got {args!r}")
    return tune.randint(int(lo), int(hi))


def _bounds(where: str, kind: str, args: Any) -> tuple[float, float]:
    if (not isinstance(args, list) or len(args) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in args)):
        raise SearchSpaceError(f"{where}: {kind} needs [lo, hi] numbers, got {args!r}")
    lo, hi = args
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise SearchSpaceError(f"{where}: {kind} needs finite lo < hi, got {args!r}")
    return lo, hi

