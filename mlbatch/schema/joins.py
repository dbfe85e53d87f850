"""The schema's `joins:` section -> JoinSpecs: equality joins on columns or on derived
keys (an expression of the main row per key), a declared many-to-one check, and as-of
joins (the latest lookup row at or before the main row's time, within a tolerance)."""
from __future__ import annotations

import re

from mlbatch.config import shorten
from mlbatch.expr import quote_column
from mlbatch.schema import fields as f
from mlbatch.schema.specs import AsOfSpec, JoinSpec, TableSpec

JOIN_FIELDS = {"table", "keys", "from", "prefix", "many_to_one", "as_of"}
AS_OF_FIELDS = {"time", "lookup_time", "tolerance"}
_TOLERANCE = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
# a lookup column's type -> the key expression types that equal it exactly
KEY_TYPES = {"int64": ("int64",), "float64": ("float64",), "string": ("string",)}


def load_joins(raw, tables: dict[str, TableSpec], main: str
               ) -> tuple[tuple[JoinSpec, ...], dict[str, str]]:
    """The joins and the columns available after them (name -> type); each join's key
    expressions may read the main table's columns and those earlier joins brought."""
    if not isinstance(raw, list):
        raise f.err("joins", f"expected a list, got {type(raw).__name__}")
    available = {c.name: c.type for c in tables[main].columns}
    joins = []
    for i, j in enumerate(raw):
        join = _load_join(f"joins[{i}]", j, tables, main, available)
        if join.table in {x.table for x in joins}:
            raise f.err(f"joins[{i}].table", f"{join.table!r} is joined twice")
        for c in tables[join.table].columns:
            if c.name not in join.on:
                if join.prefix + c.name in available:
                    raise f.err(f"joins[{i}]", f"joined column {join.prefix + c.name!r} collides")
                available[join.prefix + c.name] = c.type
        joins.append(join)
    return tuple(joins), available


def _load_join(where: str, j, tables: dict[str, TableSpec], main: str,
               available: dict[str, str]) -> JoinSpec:
    f.check_keys(where, j, JOIN_FIELDS, {"table", "keys"})
    if not isinstance(j["table"], str) or j["table"] not in tables or j["table"] == main:
        raise f.err(f"{where}.table", f"{shorten(j['table'])} is not a declared lookup table")
    on, right = f.names(f"{where}.keys", j["keys"]), tables[j["table"]]
    for k in on:
        if k not in right.column_names:
            raise f.err(f"{where}.keys", f"{shorten(k)} is not a column of table "
                                         f"{shorten(right.name)}")
    left = _left_keys(where, j, on, right, available)
    as_of = _load_as_of(f"{where}.as_of", j["as_of"], right, available) if "as_of" in j else None
    both = sorted(set(on) & set(as_of.lookup_time.columns)) if as_of else []
    if both:
        raise f.err(f"{where}.as_of.lookup_time", f"reads {both}, which are also keys (an "
                                                  f"as-of time is not matched exactly)")
    unique = set(on) | (set(as_of.lookup_time.columns) if as_of else set())
    if unique != set(right.key):
        what = "keys and the as_of lookup_time's columns" if as_of else "keys"
        raise f.err(f"{where}.keys", f"must equal the declared key {list(right.key)} of table "
                                     f"{shorten(right.name)} ({what}: {sorted(unique)})")
    prefix = j.get("prefix", f"{right.name}_")
    if not isinstance(prefix, str) or "`" in prefix:
        raise f.err(f"{where}.prefix", f"expected a string without backquotes, got "
                                       f"{shorten(prefix)}")
    return JoinSpec(table=right.name, on=on, prefix=prefix, left=left, as_of=as_of,
                    many_to_one=f.boolean(f"{where}.many_to_one", j.get("many_to_one", False)))


def _left_keys(where: str, j: dict, on: tuple[str, ...], right: TableSpec,
               available: dict[str, str]) -> tuple:
    """One expression of the main row per key: `from:` or the key's own column name."""
    texts = j["from"] if "from" in j else [quote_column(k) for k in on]
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or len(texts) != len(on):
        raise f.err(f"{where}.from", f"expected {len(on)} expression(s), one per key {list(on)}, "
                                     f"got {shorten(texts)}")
    field = f"{where}.from" if "from" in j else f"{where}.keys"
    out = []
    for k, text in zip(on, texts):
        want = right.column(k).type
        if "from" not in j and k not in available:
            raise f.err(field, f"{shorten(k)} is not a column of the main table (or give "
                               f"from: [expression, ...])")
        out.append(f.expression(field, text, available, KEY_TYPES[want],
                                f"the key {k!r} of table {right.name!r} is {want}"))
    return tuple(out)


def _load_as_of(where: str, raw, right: TableSpec, available: dict[str, str]) -> AsOfSpec:
    f.check_keys(where, raw, AS_OF_FIELDS, AS_OF_FIELDS)
    time = f.expression(f"{where}.time", raw["time"], available, ("timestamp",),
                        "an as-of time must be a timestamp (e.g. timestamp(time_hour))")
    lookup = f.expression(f"{where}.lookup_time", raw["lookup_time"],
                          {c.name: c.type for c in right.columns}, ("timestamp",),
                          f"an as-of time must be a timestamp of table {right.name!r}")
    tol = raw["tolerance"]
    m = _TOLERANCE.match(tol) if isinstance(tol, str) else None
    if not m:
        raise f.err(f"{where}.tolerance", f"expected a duration like '90s', '30m', '3h', '7d', "
                                          f"got {shorten(tol)}")
    return AsOfSpec(time=time, lookup_time=lookup, tolerance=tol.strip(),
                    tolerance_us=int(m.group(1)) * UNIT_US[m.group(2)])
