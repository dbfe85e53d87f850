"""The one config-file loader and the one ``--set key=value`` parser of every job.

Values are read as YAML with YAML 1.2 numbers: PyYAML implements YAML 1.1, where
``1e-3`` (no dot) is a string; here it is the float a user meant. JSON is YAML, so a
``.json`` file reads the same. ``--set`` keys with dots nest (``params.eta=1e-3`` sets
``{"params": {"eta": 0.001}}``); a value that is not YAML stays the string it was.

Every YAML file the project reads (schemas, pipeline files, search spaces, configs) goes
through ``load_yaml``, which refuses what PyYAML would accept silently: a key given twice
in one mapping (PyYAML keeps the last) and a document whose aliases expand past
``MAX_NODES`` nodes (a "billion laughs" bomb). ``shorten`` bounds a value shown in a message.
"""
from __future__ import annotations

import io
import re
import reprlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mlbatch.errors import UsageError


class ConfigError(ValueError, UsageError):
    """A config file, flag or field is invalid (the message names it)."""


class YamlRefused(ConfigError):
    """Valid YAML that is refused: a duplicate key, an alias bomb, too deep a nesting."""


MAX_NODES = 100_000  # nodes of a document with every alias expanded
MAX_DEPTH = 100  # levels of nesting
MAX_SHOWN = 120  # characters of a value shown in an error message


def shorten(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)``, cut to `limit` characters (a message never carries a huge value).

    Containers are cut before they are rendered whole, so even a value built from a
    deeply shared structure costs at most `limit` characters of work per level."""
    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlong = 3, limit, limit, 40
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# libyaml's parser when PyYAML was built with it: linear in the text and refusing deep
# nesting at once (PyYAML's own scanner takes seconds on 1,000 nested "[")
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):
    """SafeLoader whose floats follow YAML 1.2's core schema (``1e-3``, ``-2E+4``) and
    that refuses a key given twice in one mapping (ConfigError naming it and its lines)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then an explicit key: YAML's documented override
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeConstructor says so
                continue
            if first is not None:
                raise YamlRefused(f"line {line}: duplicate key {shorten(key)} (first on "
                                  f"line {first}); a key may appear once in a mapping")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


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


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_size(root) -> int:
    """Nodes of `root` with every alias expanded (an alias is the node it names), counted
    without expanding anything and without recursion; refuses nesting past MAX_DEPTH."""
    size: dict[int, int] = {}
    stack = [(root, 0, False)]
    while stack:
        node, depth, children_done = stack.pop()
        if id(node) in size:
            continue
        if depth > MAX_DEPTH:
            raise YamlRefused(f"line {node.start_mark.line + 1}: nested deeper than "
                              f"{MAX_DEPTH} levels")
        kids = _children(node)
        if children_done:
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
        else:
            stack.append((node, depth, True))
            stack.extend((k, depth + 1, False) for k in kids if id(k) not in size)
    return size[id(root)]


def load_yaml(text: str, source: str = "<string>") -> Any:
    """One YAML document (YAML 1.2 numbers), refusing duplicate keys and alias bombs.

    Raises ConfigError starting with `source` and naming the line."""
    stream = io.StringIO(text)
    stream.name = Path(source.split()[-1]).name if source else source  # marks name the file
    loader = _Loader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node)
        if size > MAX_NODES:
            raise YamlRefused(f"{source}: the document expands to {size:,} nodes with its "
                              f"aliases (*name) resolved, more than {MAX_NODES:,}: refused "
                              f"(an alias bomb?)")
        return loader.construct_document(node)
    except YamlRefused as e:
        if str(e).startswith(source):
            raise
        raise YamlRefused(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: cannot parse ({_shorten_text(str(e))})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    finally:
        loader.dispose()


def _shorten_text(text: str, limit: int = 600) -> str:
    """`text` cut to `limit` characters (messages quoting YAML or expressions)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_value(text: str) -> Any:
    """One value as YAML (numbers, true/false, null, [lists], {maps}); else the string."""
    try:
        return load_yaml(text, "--set")
    except YamlRefused:
        raise
    except ConfigError:
        return text


def load_file(path: str | Path, *, flag: str = "--config") -> dict[str, Any]:
    """A YAML or JSON file holding a mapping; ConfigError naming the flag and the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{flag}: no such file {path}")
    doc = load_yaml(_read_text(path, flag), f"{flag} {path}")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{flag} {path}: expected a mapping of key: value, "
                          f"got {type(doc).__name__}")
    return doc


def _read_text(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{flag} {path}: not UTF-8 text (byte {e.start})") from None


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
