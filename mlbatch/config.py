"""The one config-file loader and the one ``--set key=value`` parser of every job.

Values are read as YAML with YAML 1.2 numbers: PyYAML implements YAML 1.1, where
``1e-3`` (no dot) is a string; here it is the float a user meant. JSON is YAML, so a
``.json`` file reads the same. ``--set`` keys with dots nest (``params.eta=1e-3`` sets
``{"params": {"eta": 0.001}}``); a value that is not YAML stays the string it was.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file, flag or field is invalid (the message names it)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader whose floats follow YAML 1.2's core schema (``1e-3``, ``-2E+4``)."""


_FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"
                       r"|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")
_Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12,
                              list("-+0123456789."))
# Integers keep their resolver (checked first for the same first characters): "3" -> 3.
for _first in list("-+0123456789."):
    _resolvers = _Loader.yaml_implicit_resolvers.get(_first, [])
    _resolvers.sort(key=lambda r: r[0] != "tag:yaml.org,2002:int")


def parse_value(text: str) -> Any:
    """One value as YAML (numbers, true/false, null, [lists], {maps}); else the string."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError:
        return text


def load_file(path: str | Path, *, flag: str = "--config") -> dict[str, Any]:
    """A YAML or JSON file holding a mapping; ConfigError naming the flag and the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{flag}: no such file {path}")
    try:
        doc = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506
    except yaml.YAMLError as e:
        raise ConfigError(f"{flag} {path}: cannot parse ({e})") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{flag} {path}: expected a mapping of key: value, "
                          f"got {type(doc).__name__}")
    return doc


def apply_sets(base: dict[str, Any], items: Iterable[str]) -> dict[str, Any]:
    """``base`` updated by ``key=value`` items (dotted keys nest); returns a new dict."""
    out = _copy(base)
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected key=value (key may be dotted)")
        *parents, leaf = key.split(".")
        node = out
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parents[:i + 1])} is "
                                  f"{child!r}, not a mapping")
            node = child
        node[leaf] = parse_value(raw)
    return out


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in d.items()}
