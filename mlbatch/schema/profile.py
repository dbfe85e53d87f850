"""Profiles of raw CSV, JSON-lines and Parquet files for schema inference
(mlbatch.schema.infer; mlbatch.schema.draft writes the YAML from them).

Types are exact: int64 only where every value is a plain integer within int64, float64
where every value is a plain finite decimal (the feature job's readers accept exactly
these), else string.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from collections import Counter
from pathlib import Path

from mlbatch.errors import UsageError

NULL_CANDIDATES = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
INT64 = (-(2 ** 63), 2 ** 63 - 1)
FLOAT_EXACT = 2 ** 53
_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(?P<zone>Z|[+-]\d{2}:?\d{2})?")
MAX_KEY_COLUMNS = 20  # column pairs tried as a key among the first this many columns


class InferError(ValueError, UsageError):
    """A file cannot be profiled (named in the message)."""


@dataclasses.dataclass
class ColumnProfile:
    name: str
    type: str
    rows: int
    nulls: Counter  # null token (None for a JSON/Parquet null) -> count
    distinct: int
    min: float | int | None = None
    max: float | int | None = None
    timestamp: str | None = None  # "UTC" | "offset" | "naive" for ISO 8601 strings
    unique: bool = False

    @property
    def null_count(self) -> int:
        return sum(self.nulls.values())


@dataclasses.dataclass
class TableProfile:
    name: str
    path: Path
    format: str
    rows: int
    columns: list[ColumnProfile]
    skipped: list[str]  # columns left out, with why
    keys: list[tuple[str, ...]]  # candidate keys: unique and never null

    @property
    def null_tokens(self) -> list[str]:
        seen = {t for c in self.columns for t in c.nulls if isinstance(t, str)}
        return sorted(seen | {""})


def _read_csv(path: Path) -> tuple[list[str], list[list]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise InferError(f"{path}: empty file (no header)")
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise InferError(f"{path}:{i + 2}: {len(r)} fields, the header has {len(header)}")
    return header, [list(col) for col in zip(*body)] if body else [[] for _ in header]


def _read_jsonl(path: Path) -> tuple[list[str], list[list]]:
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InferError(f"{path}:{i + 1}: not JSON ({e.msg})") from None
    names = list(dict.fromkeys(k for r in records for k in r))
    return names, [[r.get(n) for r in records] for n in names]


def _read_parquet(path: Path) -> tuple[list[str], list[list], dict[str, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    kinds = {}
    for field in t.schema:
        kinds[field.name] = ("int64" if pa.types.is_integer(field.type) else "float64"
                             if pa.types.is_floating(field.type) else "string"
                             if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
                             else None)
    return t.column_names, [t.column(n).to_pylist() for n in t.column_names], kinds


def _type_of(values: list) -> str:
    """The narrowest exact type of non-null values (strings as read, or JSON scalars)."""
    if any(isinstance(v, (bool, dict, list)) for v in values):
        return "string"
    if all(isinstance(v, int) or (isinstance(v, str) and _INT.fullmatch(v.strip()))
           for v in values) and all(INT64[0] <= int(v) <= INT64[1] for v in values):
        return "int64"
    if all(_exact_float(v) for v in values):
        return "float64"
    return "string"


def _exact_float(v) -> bool:
    """A finite decimal; an integer only where float64 holds it exactly (|n| <= 2**53)."""
    if isinstance(v, str):
        v = v.strip()
        if _INT.fullmatch(v):
            return abs(int(v)) <= FLOAT_EXACT
        return bool(_DECIMAL.fullmatch(v)) and math.isfinite(float(v))
    if isinstance(v, int):
        return abs(v) <= FLOAT_EXACT
    return isinstance(v, float) and math.isfinite(v)


def _timestamp_zone(values: list) -> str | None:
    matches = [_ISO.fullmatch(v.strip()) if isinstance(v, str) else None for v in values]
    if not values or not all(matches):
        return None
    zones = {m.group("zone") is not None for m in matches}
    if zones == {True}:
        return "UTC" if all(m.group("zone") == "Z" for m in matches) else "offset"
    return "naive" if zones == {False} else None


def profile_column(name: str, raw: list, declared: str | None = None) -> ColumnProfile:
    """One column's profile: type, nulls seen by token, distinct values, range, zone."""
    nulls: Counter = Counter()
    values = []
    for v in raw:
        if v is None or (isinstance(v, str) and v.strip() in NULL_CANDIDATES):
            nulls[None if v is None else v.strip()] += 1
        else:
            values.append(v)
    typ = declared or _type_of(values)
    distinct = len({json.dumps(v) if isinstance(v, (dict, list)) else v for v in values})
    p = ColumnProfile(name=name, type=typ, rows=len(raw), nulls=nulls, distinct=distinct,
                      unique=distinct == len(raw) and not nulls and len(raw) > 1)
    if values and typ in ("int64", "float64"):
        nums = [int(v) if typ == "int64" else float(v) for v in values]
        p.min, p.max = min(nums), max(nums)
    elif typ == "string":
        p.timestamp = _timestamp_zone(values)
    return p


def _candidate_keys(columns: list[ColumnProfile], data: dict[str, list]) -> list[tuple[str, ...]]:
    """Unique never-null single columns; else unique never-null pairs (first columns)."""
    singles = [(c.name,) for c in columns if c.unique and c.type != "float64"]
    if singles:
        return singles
    ok = [c.name for c in columns[:MAX_KEY_COLUMNS] if not c.nulls and c.type != "float64"]
    n = len(next(iter(data.values()), []))
    return [(a, b) for i, a in enumerate(ok) for b in ok[i + 1:]
            if n > 1 and len(set(zip(data[a], data[b]))) == n][:3]


def profile_file(path: Path) -> TableProfile:
    """Reads one file (its format from the suffix) and profiles every column."""
    fmt = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}.get(
        path.suffix.lower())
    if fmt is None:
        raise InferError(f"{path}: unknown format (expected .csv, .jsonl or .parquet)")
    kinds: dict[str, str | None] = {}
    if fmt == "csv":
        names, cols = _read_csv(path)
    elif fmt == "jsonl":
        names, cols = _read_jsonl(path)
    else:
        names, cols, kinds = _read_parquet(path)
    profiles, skipped, data = [], [], {}
    for name, values in zip(names, cols):
        why = _unusable_name(name) or ("Parquet type not readable as int64/float64/string"
                                       if fmt == "parquet" and kinds.get(name) is None else None)
        if why:
            skipped.append(f"{name!r}: {why}")
            continue
        profiles.append(profile_column(name, values, kinds.get(name)))
        data[name] = values
    table = re.sub(r"\W", "_", path.stem.split(".")[0]) or "table"
    return TableProfile(name=table, path=path, format=fmt, rows=len(cols[0]) if cols else 0,
                        columns=profiles, skipped=skipped,
                        keys=_candidate_keys(profiles, data))


def _unusable_name(name: str) -> str | None:
    if not name.strip():
        return "no name (a row-name column): left out"
    if "`" in name:
        return "contains a backquote, which expressions use to quote names"
    return None
