"""Time in mlbatch.expr: ISO 8601 parsing, zones, date parts, durations and timestamp
arithmetic, each a typing rule beside its vectorized pyarrow.compute implementation.

A `timestamp` is microseconds without a zone: `timestamp(s)` converts a time written with
an offset (`Z`, `+02:00`) to UTC and keeps one written without an offset as it is.
`to_zone(ts, zone)` reads ts as UTC and gives the wall-clock time in `zone`; `from_zone`
is its inverse. A `duration` is microseconds (`hours(3)`, `t1 - t0`). Semantics and
examples: docs/schema.md.
"""
from __future__ import annotations

import dataclasses
import functools
import zoneinfo
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.expr_fns import (NUMERIC, ExprError, FnSpec, _arity, _cast, _civil_days,
                              _date_days, _date_type, _mod, _need, _null_where, _valid_date,
                              floor_int)

US = 1_000_000  # microseconds per second
TS, DUR = pa.timestamp("us"), pa.duration("us")
_EPOCH = 719468  # 1970-01-01 in _civil_days
# ISO 8601 extended format: date, optional time (seconds and up to 6 fraction digits
# optional), optional offset (Z, +hh, +hhmm, +hh:mm) after a time
ISO_8601 = (r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
            r"(?:[T ](?P<h>[01]\d|2[0-3]):(?P<mi>[0-5]\d)(?::(?P<s>[0-5]\d)(?:[.,](?P<f>\d{1,6}))?)?"
            r"(?P<z>Z|(?P<sign>[+-])(?P<zh>[01]\d|2[0-3])(?::?(?P<zm>[0-5]\d))?)?)?$")
UNITS = {"second": "second", "minute": "minute", "hour": "hour", "day": "day",
         "week": "week", "month": "month", "year": "year"}
DURATIONS = {"seconds": US, "minutes": 60 * US, "hours": 3600 * US, "days": 86400 * US,
             "weeks": 7 * 86400 * US}
SHOWN = 80  # characters of a bad value quoted in a per-row reason


def _ints(parts, name: str):
    """A component of the parsed struct as int64 ("" -> 0)."""
    s = pc.struct_field(parts, name)
    return pc.cast(pc.if_else(pc.equal(s, ""), "0", s), pa.int64())


ZONED = r"[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def parse_iso(s: pa.Array) -> pa.Array:
    """Strings -> timestamp[us] (UTC where an offset was given); null where s is null or
    not an ISO 8601 time that exists (month 13, Feb 30, hour 24).

    Arrow's own ISO 8601 cast reads the strings that ISO_8601 accepts (3x faster than
    taking them apart); where it refuses any (a comma before the fraction, Feb 30), the
    whole batch is taken apart by parse_iso_parts."""
    none = pa.scalar(None, pa.string())
    ok = pc.and_(pc.match_substring_regex(s, ISO_8601), pc.invert(pc.starts_with(s, "0000-")))
    valid = pc.if_else(ok, s, none)  # Arrow reads year 0; the proleptic calendar has none
    zoned = pc.match_substring_regex(valid, ZONED)
    try:
        utc = pc.cast(pc.cast(pc.if_else(zoned, valid, none), pa.timestamp("us", tz="UTC")), TS)
        return pc.coalesce(utc, pc.cast(pc.if_else(zoned, none, valid), TS))
    except pa.ArrowInvalid:
        return parse_iso_parts(s)


def parse_iso_parts(s: pa.Array) -> pa.Array:
    """parse_iso by taking each string apart (ISO_8601's groups) and computing its
    microseconds: exact for every string ISO_8601 accepts."""
    parts = pc.extract_regex(s, ISO_8601)
    y, mo, d = (_ints(parts, k) for k in ("y", "mo", "d"))
    ok = pc.and_(pc.is_valid(parts), _valid_date(y, mo, d))
    safe = [pc.if_else(ok, v, 1) for v in (y, mo, d)]
    days = pc.subtract(_civil_days(*safe), _EPOCH)
    secs = pc.add(pc.multiply(pc.add(pc.multiply(pc.add(pc.multiply(days, 24),
                                                        _ints(parts, "h")), 60),
                                     _ints(parts, "mi")), 60), _ints(parts, "s"))
    frac = pc.struct_field(parts, "f")
    micros = pc.cast(pc.utf8_rpad(pc.if_else(pc.equal(frac, ""), "0", frac), 6, "0"), pa.int64())
    offset = pc.multiply(pc.add(pc.multiply(_ints(parts, "zh"), 60), _ints(parts, "zm")), 60)
    offset = pc.if_else(pc.equal(pc.struct_field(parts, "sign"), "-"), pc.negate(offset), offset)
    total = pc.add(pc.multiply(pc.subtract(secs, offset), US), micros)
    return _null_where(pc.invert(ok), pc.cast(total, TS))


def _timestamp_type(args) -> str:
    _arity(args, (1, 2))
    _need(args[:1], ("string",), "a string")
    if len(args) == 2 and (args[1].kind != "lit" or args[1].type != "string"):
        raise ExprError("the format (argument 2) must be a string literal, e.g. '%d/%m/%Y'")
    return "timestamp"


def _timestamp(node, args):
    if len(args) == 1:
        return parse_iso(args[0])
    return pc.strptime(args[0], node.args[1].value, unit="us", error_is_null=True)


def _unparsed(node, args, out):
    """Rows whose string did not parse, with the reason (timestamp(s[, format]))."""
    bad = pc.and_(pc.is_valid(args[0]), pc.is_null(out))
    what = f"not a time in the format {node.args[1].value!r}" if len(args) == 2 else \
        "not an ISO 8601 time (e.g. 2017-01-01T06:00:42Z)"
    shown = pc.utf8_slice_codeunits(args[0], 0, SHOWN)
    return bad, pc.binary_join_element_wise(f"timestamp() at position {node.pos}: '", shown,
                                            f"' is {what}", "")


@functools.lru_cache(maxsize=64)
def check_zone(zone: str) -> str:
    """`zone` if it is an IANA time zone Arrow knows (e.g. 'America/Chicago')."""
    try:
        zoneinfo.ZoneInfo(zone)
        pc.local_timestamp(pa.array([0], pa.timestamp("us", tz=zone)))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, pa.ArrowInvalid) as e:
        raise ExprError(f"unknown time zone {zone!r} (an IANA name such as "
                        f"'America/Chicago' or 'UTC')") from e
    return zone


def _zone_arg(node) -> str:
    if node.kind != "lit" or node.type != "string":
        raise ExprError("the time zone must be a string literal, e.g. 'America/Chicago'")
    return check_zone(node.value)


def _zoned_type(args) -> str:
    _arity(args, 2)
    _need(args[:1], ("timestamp",), "a timestamp")
    _zone_arg(args[1])
    return "timestamp"


def to_zone(ts: pa.Array, zone: str) -> pa.Array:
    """UTC -> the wall-clock time in zone."""
    return pc.cast(pc.local_timestamp(pc.cast(ts, pa.timestamp("us", tz=zone))), TS)


def _from_zone(node, args):
    """Wall-clock time in zone -> UTC; null where it does not exist or is ambiguous."""
    ts, zone = args[0], node.args[1].value
    early = pc.assume_timezone(ts, zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(ts, zone, ambiguous="latest", nonexistent="latest")
    back = pc.equal(to_zone(pc.cast(early, TS), zone), ts)
    ok = pc.and_(pc.equal(pc.cast(early, pa.int64()), pc.cast(late, pa.int64())), back)
    return _null_where(pc.invert(ok), pc.cast(early, TS))


def _zone_problems(node, args, out):
    bad = pc.and_(pc.is_valid(args[0]), pc.is_null(out))
    shown = pc.cast(args[0], pa.string())
    return bad, pc.binary_join_element_wise(
        f"from_zone() at position {node.pos}: local time ", shown,
        f" does not exist or is ambiguous in {node.args[1].value} (a daylight-saving change)", "")


def _part_type(args) -> str:
    _arity(args, (1, 2))
    _need(args[:1], ("timestamp",), "a timestamp (timestamp(s) or date(y, m, d))")
    if len(args) == 2:
        _zone_arg(args[1])
    return "int64"


def part(name: str) -> FnSpec:
    """A date part, of the time as it is or (second argument) of its wall clock in a zone."""
    fn = getattr(pc, name)

    def run(node, args):
        ts = to_zone(args[0], node.args[1].value) if len(args) == 2 else args[0]
        return pc.cast(fn(ts), pa.int64())
    return FnSpec(_part_type, run, signature=f"{name}(ts[, zone]) -> int64")


def _floor_type(args) -> str:
    if len(args) == 1:
        _need(args, NUMERIC, "a number (or a timestamp and a unit)")
        return args[0].type
    _arity(args, 2)
    _need(args[:1], ("timestamp",), "a timestamp")
    if args[1].kind != "lit" or args[1].value not in UNITS:
        raise ExprError(f"the unit (argument 2) must be one of {sorted(UNITS)} as a string "
                        f"literal, e.g. 'hour'")
    return "timestamp"


def _floor(node, args):
    if len(args) == 1:
        return args[0] if node.type == "int64" else pc.floor(args[0])
    return pc.floor_temporal(args[0], unit=UNITS[node.args[1].value], week_starts_monday=True)


def _day_of_week_type(args) -> str:
    if len(args) == 3:
        _date_type(args)
        return "int64"
    return _part_type(args)


def _day_of_week(node, args):
    """ISO order: Monday = 0 .. Sunday = 6 (0000-03-01 was a Wednesday)."""
    if len(args) < 3:
        return part("day_of_week").evaluate(node, args)
    days, ok = _date_days(args)
    return _null_where(pc.invert(ok), _mod(pc.add(pc.if_else(ok, days, 0), 2), 7))


def _duration(factor: int) -> FnSpec:
    def typer(args):
        _arity(args, 1)
        _need(args, ("int64",), "an integer")
        return "duration"
    return FnSpec(typer, lambda node, args: pc.cast(
        pc.multiply_checked(_cast(args[0], "int64"), factor), DUR),
        signature="(n) -> duration")


def micros(x: pa.Array | pa.Scalar) -> pa.Array | pa.Scalar:
    return pc.cast(x, pa.int64())


# (operator, left type, right type) -> result type; the rest of the operators' typing is
# numeric (mlbatch.expr_fns)
TEMPORAL = {
    ("add", "timestamp", "duration"): "timestamp", ("add", "duration", "timestamp"): "timestamp",
    ("add", "duration", "duration"): "duration",
    ("sub", "timestamp", "timestamp"): "duration", ("sub", "timestamp", "duration"): "timestamp",
    ("sub", "duration", "duration"): "duration",
    ("mul", "duration", "int64"): "duration", ("mul", "int64", "duration"): "duration",
    ("div", "duration", "duration"): "float64",
    ("floordiv", "duration", "duration"): "int64",
    ("mod", "duration", "duration"): "duration",
    ("neg", "duration", None): "duration",
}
_ARROW = {"timestamp": TS, "duration": DUR}


def temporal_type(name: str, args: tuple) -> str | None:
    """The result type of operator `name` on temporal operands; None if none is temporal."""
    types = tuple(a.type for a in args)
    if not {"timestamp", "duration"} & set(types):
        return None
    key = (name, *types) if len(types) == 2 else (name, types[0], None)
    if key not in TEMPORAL:
        raise ExprError(f"not defined for {' and '.join(types)} (timestamps: ts - ts, "
                        f"ts + duration, ts - duration; durations: +, -, * int, /, //, %)")
    return TEMPORAL[key]


def temporal_eval(name: str, node, args: list) -> pa.Array | pa.Scalar:
    """Operator `name` on microsecond counts; the result typed as node.type."""
    a = [micros(x) for x in args]
    if name == "div":
        b = _null_where(pc.equal(a[1], 0), a[1])
        return pc.divide(pc.cast(a[0], pa.float64()), pc.cast(b, pa.float64()))
    if name in ("floordiv", "mod"):
        b = _null_where(pc.equal(a[1], 0), a[1])
        q = floor_int(a[0], b)
        out = q if name == "floordiv" else pc.subtract_checked(a[0], pc.multiply_checked(q, b))
    else:
        fn: Callable = {"add": pc.add_checked, "sub": pc.subtract_checked,
                        "mul": pc.multiply_checked, "neg": pc.negate_checked}[name]
        out = fn(*a)
    return out if node.type in ("int64", "float64") else pc.cast(out, _ARROW[node.type])


TIME_FUNCTIONS: dict[str, FnSpec] = {
    "timestamp": FnSpec(_timestamp_type, _timestamp, signature="timestamp(s[, format])",
                        problems=_unparsed),
    "to_zone": FnSpec(_zoned_type, lambda node, args: to_zone(args[0], node.args[1].value),
                      signature="to_zone(ts, zone) -> timestamp"),
    "from_zone": FnSpec(_zoned_type, _from_zone, signature="from_zone(ts, zone) -> timestamp",
                        problems=_zone_problems),
    "floor": FnSpec(_floor_type, _floor, signature="floor(x) or floor(ts, unit)"),
    **{name: _duration(factor) for name, factor in DURATIONS.items()},
    "day_of_week": FnSpec(_day_of_week_type, _day_of_week,
                          signature="day_of_week(ts[, zone]) or day_of_week(year, month, day)"),
    **{name: part(name) for name in ("year", "month", "day", "hour", "minute", "second",
                                     "day_of_year")},
}


def _with_time(name: str, spec: FnSpec) -> FnSpec:
    """Operator `name`, extended to timestamps and durations (TEMPORAL)."""
    def typer(args):
        out = temporal_type(name, args)
        return spec.result_type(args) if out is None else out

    def run(node, args):
        if any(a.type in _ARROW for a in node.args):
            return temporal_eval(name, node, args)
        return spec.evaluate(node, args)
    return dataclasses.replace(spec, result_type=typer, evaluate=run)


def with_time(operators: dict[str, FnSpec]) -> dict[str, FnSpec]:
    """The operators, with arithmetic on timestamps and durations added."""
    names = {op for op, _, _ in TEMPORAL}
    return {n: _with_time(n, s) if n in names else s for n, s in operators.items()}
