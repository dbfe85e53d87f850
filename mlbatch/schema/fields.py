"""Field validators of the schema loader: each raises SchemaError naming the field."""
from __future__ import annotations

import math
from collections.abc import Mapping

from mlbatch.config import shorten
from mlbatch.expr import Expr, ExprError, compile_expr
from mlbatch.schema.specs import SchemaError


def err(where: str, msg: str) -> SchemaError:
    return SchemaError(f"{where}: {msg}")


def check_keys(where: str, raw, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(raw, dict):
        raise err(where, f"expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - allowed
    if unknown:
        raise err(where, f"unknown field(s) {shorten(sorted(unknown))}; allowed: {sorted(allowed)}")
    missing = required - set(raw)
    if missing:
        raise err(where, f"missing required field(s) {sorted(missing)}")
    return raw


def as_tuple(v) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def names(where: str, v) -> tuple[str, ...]:
    """A column name or a list of them."""
    out = as_tuple(v)
    if not out or not all(isinstance(n, str) and n for n in out):
        raise err(where, f"expected a column name or a list of them, got {shorten(v)}")
    return out


def string(where: str, v, allow_int: bool = False) -> str:
    ok = isinstance(v, str) and v != "" or allow_int and isinstance(v, int) and \
        not isinstance(v, bool)
    if not ok:
        raise err(where, f"expected a non-empty string, got {shorten(v)}")
    return str(v)


MAX_INT = 2**63 - 1  # what an int64 holds
# bucket counts: ids past 2**24 are not exact in float32 (XGBoost's feature values)
MAX_BUCKETS = 2**24
# XGBoost refuses feature names containing these (inside a Ray actor, far from the schema)
FEATURE_NAME_FORBIDDEN = "[]<"


def integer(where: str, v, lo: int | None = None, hi: int = MAX_INT) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise err(where, f"expected an integer, got {shorten(v)}")
    if lo is not None and v < lo:
        raise err(where, f"must be >= {lo}, got {shorten(v)}")
    if v > hi:
        raise err(where, f"must be <= {hi:,}, got {shorten(v)}")
    return v


def number(where: str, v) -> float | int:
    """A finite number: NaN (`.nan`) or infinity would switch a check off or fill a
    feature with it."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise err(where, f"expected a number, got {shorten(v)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise err(where, f"expected a finite number, got {v}")
    if isinstance(v, int) and abs(v) > MAX_INT:
        raise err(where, f"must fit in int64 (|x| <= {MAX_INT:,}), got {shorten(v)}")
    return v


def feature_name(where: str, name: str) -> str:
    """A feature name every trainer accepts (XGBoost refuses `[`, `]`, `<`)."""
    bad = sorted({c for c in name if c in FEATURE_NAME_FORBIDDEN})
    if bad:
        raise err(where, f"feature name {shorten(name)} contains {' '.join(bad)}, which "
                         f"XGBoost refuses in feature names: rename the column (or derive "
                         f"one with another name)")
    return name


def share(where: str, v, open_interval: bool = False) -> float:
    number(where, v)
    if open_interval and not 0 < v < 1:
        raise err(where, f"must be in (0, 1), got {v}")
    if not 0 <= v <= 1:
        raise err(where, f"must be a share in [0, 1], got {shorten(v)}")
    return float(v)


def boolean(where: str, v) -> bool:
    if not isinstance(v, bool):
        raise err(where, f"expected true or false, got {shorten(v)}")
    return v


def expression(where: str, text, columns: Mapping[str, str], want: tuple[str, ...],
               what: str) -> Expr:
    """`text` compiled against `columns`; its type must be one of `want` (`what` says so)."""
    if not isinstance(text, str):
        raise err(where, f"expected an expression string, got {shorten(text)}")
    try:
        e = compile_expr(text, columns)
    except ExprError as x:
        raise err(where, f"{shorten(text)}: {x}") from None
    if e.type not in want:
        raise err(where, f"{shorten(text)} is {e.type}; {what}")
    return e
