"""Exact typing of one raw value against a declared column type (the per-record path of
records.validate_chunk).

An integer is read as an integer, never through float64: ``9007199254740993`` stays
itself and ``99999999999999999999`` (past int64) is a problem naming the column, not a
sentinel. A number is read only in its plain decimal form (optional sign, digits, point,
exponent; spaces around it ignored): hexadecimal, underscores, ``NaN`` and infinities are
not finite numbers. A JSON object, array or boolean where a number or a string is
declared is a problem too, never its text.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
JSON_KINDS = {dict: "a JSON object", list: "a JSON array", bool: "a JSON boolean"}


class ValueProblem(ValueError):
    """Why a value cannot be stored as its column's type (the message, without the
    column name, goes into the dead letter's reason)."""


def is_plain_decimal(text: str) -> bool:
    """Whether a string is a number in plain decimal form (spaces around allowed)."""
    return _DECIMAL.fullmatch(text.strip()) is not None


def show(value) -> str:
    """A raw value as a reason quotes it: text quoted, a JSON number as written."""
    return str(value) if isinstance(value, Decimal) else repr(value)


def _json_kind(value) -> str | None:
    for kind, words in JSON_KINDS.items():
        if isinstance(value, kind):
            return words
    return None


def _decimal(value) -> Decimal:
    """A number's exact value; ValueProblem when it is not a plain finite number."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, (int, float)):
        d = Decimal(value)
    else:
        text = str(value).strip()
        if not _DECIMAL.fullmatch(text):
            raise ValueProblem(f"not a finite number: {show(value)}")
        try:
            d = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            raise ValueProblem(f"not a finite number: {show(value)}") from None
    if not d.is_finite():
        raise ValueProblem(f"not a finite number: {show(value)}")
    return d


def to_int(value) -> int:
    """An int64 value, exactly: an integer (or an integral number such as ``3.0``)."""
    kind = _json_kind(value)
    if kind:
        raise ValueProblem(f"expected an integer, got {kind}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        n = int(value.strip())
    else:
        d = _decimal(value)
        if d != d.to_integral_value():
            raise ValueProblem(f"not an integer: {show(value)}")
        if abs(d.adjusted()) > 40:  # far past int64: no huge int built from 1e999999
            raise ValueProblem(f"integer out of the int64 range: {show(value)}")
        n = int(d)
    if not INT64_MIN <= n <= INT64_MAX:
        raise ValueProblem(f"integer out of the int64 range: {show(value)}")
    return n


def to_float(value) -> float:
    """A float64 value (the nearest double); a number past float64's range is not finite."""
    kind = _json_kind(value)
    if kind:
        raise ValueProblem(f"expected a number, got {kind}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueProblem(f"not a finite number: {show(value)}")
        return value
    if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
        raise ValueProblem(f"not a finite number: {show(value)}")
    d = _decimal(value)
    x = float(d)
    if not math.isfinite(x):
        raise ValueProblem(f"not a finite number: {show(value)}")
    return x


def to_string(value) -> str:
    """A string value: text as it is; a JSON number as its text."""
    if isinstance(value, str):
        return value
    kind = _json_kind(value)
    if kind:
        raise ValueProblem(f"expected a string, got {kind}")
    return str(value)


CONVERTERS = {"int64": to_int, "float64": to_float, "string": to_string}
