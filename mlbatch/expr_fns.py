"""The operators and functions of mlbatch.expr: each one's typing rule and its vectorized
pyarrow.compute implementation, side by side. Semantics: docs/schema.md."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.errors import UsageError

NUMERIC = ("int64", "float64")
_ARROW = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
          "bool": pa.bool_(), "timestamp": pa.timestamp("us"), "duration": pa.duration("us"),
          "null": pa.null()}


class ExprError(ValueError, UsageError):
    """An expression does not parse or does not type-check; the message says where."""


def arrow_type(t: str) -> pa.DataType:
    return _ARROW[t]


@dataclasses.dataclass(frozen=True)
class FnSpec:
    result_type: Callable  # (typed argument nodes) -> result type; raises ExprError
    evaluate: Callable  # (node, evaluated arguments) -> Array or Scalar
    display: str = ""  # how errors name an operator; functions are named by their name
    signature: str = ""  # for docs and the error listing
    # (node, evaluated arguments, result) -> (rows that failed, their reasons): a value
    # that cannot be computed is reported per row, never a silent null
    problems: Callable | None = None


def _arity(args, n: int | tuple[int, int]) -> None:
    lo, hi = (n, n) if isinstance(n, int) else n
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
        raise ExprError(f"takes {want} argument(s), got {len(args)}")


def _need(args, allowed: tuple[str, ...], what: str) -> None:
    for i, a in enumerate(args):
        if a.type not in allowed:
            raise ExprError(f"argument {i + 1} is {a.type}, needs {what}")


def unify(types: list[str]) -> str:
    """The common type of where/coalesce/clip branches: equal types, or int64 and float64
    mixed (-> float64); a null literal fits any type."""
    real = sorted({t for t in types if t != "null"})
    if not real:
        return "null"
    if len(real) == 1:
        return real[0]
    if set(real) <= set(NUMERIC):
        return "float64"
    raise ExprError(f"mixes {' and '.join(real)} (the branches must have one type)")


def _cast(x, t: str):
    if t == "null" or x.type == arrow_type(t):
        return x
    return pc.cast(x, arrow_type(t))


def _null_where(mask, x):
    """x, with null where mask holds."""
    return pc.if_else(mask, pa.scalar(None, x.type), x)


def _numeric(n_args: int, result: str | None = None) -> Callable:
    def typer(args):
        _arity(args, n_args)
        _need(args, NUMERIC, "a number")
        return result or ("int64" if all(a.type == "int64" for a in args) else "float64")
    return typer


def floor_int(a, b):
    """Exact integer floor division (b non-zero or null): Arrow's truncates towards 0."""
    q = pc.divide_checked(a, b)
    r = pc.subtract(a, pc.multiply(q, b))
    off = pc.and_(pc.not_equal(r, 0), pc.not_equal(pc.less(r, 0), pc.less(b, 0)))
    return pc.subtract(q, pc.cast(off, pa.int64()))


def _floordiv(node, args):
    a, b = (_cast(x, node.type) for x in args)
    b = _null_where(pc.equal(b, 0), b)
    return pc.floor(pc.divide(a, b)) if node.type == "float64" else floor_int(a, b)


def _modulo(node, args):
    """a - (a // b) * b: the sign of b, as Python (-7 % 3 == 2); null where b is 0."""
    a, b = (_cast(x, node.type) for x in args)
    b = _null_where(pc.equal(b, 0), b)
    if node.type == "float64":
        return pc.subtract(a, pc.multiply(pc.floor(pc.divide(a, b)), b))
    return pc.subtract(a, pc.multiply(floor_int(a, b), b))


def _divide(node, args):
    a, b = (_cast(x, "float64") for x in args)
    return pc.divide(a, _null_where(pc.equal(b, 0), b))


INT64 = (-2**63, 2**63 - 1)


def _exact(fn: Callable, exact: Callable) -> Callable:
    """An int64 operation whose rows that overflow are null (overflowed() says which),
    instead of failing the whole batch; `exact` computes one row with Python ints."""
    def run(node, args):
        xs = [_cast(x, node.type) for x in args]
        try:
            return fn(*xs)
        except pa.ArrowInvalid:
            if node.type != "int64":
                raise
        n = max((len(x) for x in xs if isinstance(x, pa.Array)), default=1)
        rows = zip(*(x.to_pylist() if isinstance(x, pa.Array) else [x.as_py()] * n
                     for x in xs))
        out = [None if None in r else exact(*r) for r in rows]
        return pa.array([v if v is not None and INT64[0] <= v <= INT64[1] else None
                         for v in out], pa.int64())
    return run


def overflowed(node, args, out):
    """Rows of an int64 operation whose inputs are all present and whose result is null:
    it overflowed int64."""
    bad = pc.is_null(out)
    for a in args:
        bad = pc.and_(bad, pc.is_valid(a))
    what = OPERATORS[node.name].display if node.kind == "op" else f"{node.name}()"
    return bad, pa.scalar(f"{what} at position {node.pos} overflows int64")


def _compare_type(args) -> str:
    _arity(args, 2)
    a, b = (x.type for x in args)
    if "null" in (a, b):
        raise ExprError("a comparison with null is always null: use is_null(x)")
    if a != b and not {a, b} <= set(NUMERIC):
        raise ExprError(f"cannot compare {a} with {b}")
    return "bool"


def _order_type(args) -> str:
    _compare_type(args)
    if args[0].type == "bool":
        raise ExprError("booleans have no order; compare them with == or !=")
    return "bool"


def _logic(n: int) -> Callable:
    def typer(args):
        _arity(args, n)
        _need(args, ("bool",), "a boolean (a comparison, and/or/not, is_null)")
        return "bool"
    return typer


def _where_type(args) -> str:
    _arity(args, 3)
    _need(args[:1], ("bool",), "a boolean condition")
    return unify([args[1].type, args[2].type])


def _coalesce_type(args) -> str:
    _arity(args, (1, 99))
    return unify([a.type for a in args])


def _domain(fn: Callable, valid: Callable) -> Callable:
    """A float function that is null where its argument is outside its domain."""
    def run(node, args):
        x = _cast(args[0], "float64")
        return fn(_null_where(pc.invert(valid(x)), x))
    return run


def _clip(node, args):
    x, lo, hi = (_cast(a, node.type) for a in args)
    return pc.min_element_wise(pc.max_element_wise(x, lo, skip_nulls=False), hi,
                               skip_nulls=False)


def _concat_type(args) -> str:
    _arity(args, (2, 99))
    _need(args, ("string", "int64"), "a string or an integer")
    return "string"


def _mod(a, b: int):
    """a mod b for a >= 0 and a constant b > 0."""
    return pc.subtract(a, pc.multiply(pc.divide(a, b), b))


def _civil_days(y, m, d):
    """Days since 0000-03-01 of the proleptic Gregorian date y-m-d, for years 1..9999
    (all terms non-negative, so Arrow's truncating division is floor division; after
    H. Hinnant's days_from_civil)."""
    y = pc.subtract(y, pc.cast(pc.less_equal(m, 2), pa.int64()))
    era = pc.divide(y, 400)
    yoe = pc.subtract(y, pc.multiply(era, 400))
    mp = pc.if_else(pc.greater(m, 2), pc.subtract(m, 3), pc.add(m, 9))
    doy = pc.add(pc.divide(pc.add(pc.multiply(mp, 153), 2), 5), pc.subtract(d, 1))
    doe = pc.add(pc.subtract(pc.add(pc.multiply(yoe, 365), pc.divide(yoe, 4)),
                             pc.divide(yoe, 100)), doy)
    return pc.add(pc.multiply(era, 146097), doe)


_MONTH_DAYS = pa.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())
_EPOCH = 719468  # 1970-01-01 in _civil_days


def _valid_date(y, m, d):
    """True where y-m-d exists: year 1..9999, month 1..12, day 1..days in that month."""
    y_ok = pc.and_(pc.greater_equal(y, 1), pc.less_equal(y, 9999))
    y = pc.if_else(y_ok, y, 1)
    leap = pc.and_(pc.equal(_mod(y, 4), 0), pc.or_(pc.not_equal(_mod(y, 100), 0),
                                                  pc.equal(_mod(y, 400), 0)))
    month_ok = pc.and_(pc.greater_equal(m, 1), pc.less_equal(m, 12))
    safe_m = pc.if_else(month_ok, m, 1)
    days = pc.add(pc.take(_MONTH_DAYS, pc.subtract(safe_m, 1)),
                  pc.cast(pc.and_(leap, pc.equal(safe_m, 2)), pa.int64()))
    return pc.and_(pc.and_(y_ok, month_ok), pc.and_(pc.greater_equal(d, 1),
                                                    pc.less_equal(d, days)))


def _date_days(args):
    """(days since 1970, valid) of date(y, m, d)."""
    y, m, d = (_cast(a, "int64") for a in args)
    return _civil_days(y, m, d), _valid_date(y, m, d)


def _date(node, args):
    days, ok = _date_days(args)
    ts = pc.cast(pc.multiply(pc.subtract(days, _EPOCH), 86400 * 1_000_000), pa.timestamp("us"))
    return _null_where(pc.invert(ok), ts)  # month 13 or Feb 30 -> null


def _date_type(args) -> str:
    _arity(args, 3)
    _need(args, ("int64",), "an integer")
    return "timestamp"


def _is_null_type(args) -> str:
    _arity(args, 1)
    return "bool"


def _lower_type(args) -> str:
    _arity(args, 1)
    _need(args, ("string",), "a string")
    return "string"


def _bool_op(fn: Callable, display: str) -> FnSpec:
    return FnSpec(_logic(2), lambda node, args: fn(*args), display=display)


def _cmp(fn: Callable, display: str, typer: Callable) -> FnSpec:
    return FnSpec(typer, lambda node, args: fn(*args), display=f"comparison {display!r}")


OPERATORS: dict[str, FnSpec] = {
    "add": FnSpec(_numeric(2), _exact(pc.add_checked, lambda a, b: a + b), "'+'",
                  problems=overflowed),
    "sub": FnSpec(_numeric(2), _exact(pc.subtract_checked, lambda a, b: a - b), "'-'",
                  problems=overflowed),
    "mul": FnSpec(_numeric(2), _exact(pc.multiply_checked, lambda a, b: a * b), "'*'",
                  problems=overflowed),
    "div": FnSpec(_numeric(2, "float64"), _divide, "'/'"),
    "floordiv": FnSpec(_numeric(2), _floordiv, "'//'"),
    "mod": FnSpec(_numeric(2), _modulo, "'%'"),
    "neg": FnSpec(_numeric(1), _exact(pc.negate_checked, lambda a: -a), "unary '-'",
                  problems=overflowed),
    "eq": _cmp(pc.equal, "==", _compare_type),
    "ne": _cmp(pc.not_equal, "!=", _compare_type),
    "lt": _cmp(pc.less, "<", _order_type),
    "le": _cmp(pc.less_equal, "<=", _order_type),
    "gt": _cmp(pc.greater, ">", _order_type),
    "ge": _cmp(pc.greater_equal, ">=", _order_type),
    "and": _bool_op(pc.and_kleene, "'and'"),
    "or": _bool_op(pc.or_kleene, "'or'"),
    "not": FnSpec(_logic(1), lambda node, args: pc.invert(args[0]), "'not'"),
}

FUNCTIONS: dict[str, FnSpec] = {
    "where": FnSpec(_where_type, lambda node, args: pc.if_else(
        args[0], *(_cast(a, node.type) for a in args[1:])), signature="where(cond, a, b)"),
    "coalesce": FnSpec(_coalesce_type, lambda node, args: pc.coalesce(
        *(_cast(a, node.type) for a in args)), signature="coalesce(a, b, ...)"),
    "is_null": FnSpec(_is_null_type, lambda node, args: pc.is_null(args[0]), signature="is_null(x) -> bool"),
    "abs": FnSpec(_numeric(1), _exact(pc.abs_checked, abs), signature="abs(x)",
                  problems=overflowed),
    "exp": FnSpec(_numeric(1, "float64"), lambda node, args: pc.exp(_cast(args[0], "float64")),
                  signature="exp(x) -> float64"),
    "log": FnSpec(_numeric(1, "float64"), _domain(pc.ln, lambda x: pc.greater(x, 0)),
                  signature="log(x) -> float64, null for x <= 0"),
    "log1p": FnSpec(_numeric(1, "float64"), _domain(pc.log1p, lambda x: pc.greater(x, -1)),
                    signature="log1p(x) -> float64, null for x <= -1"),
    "sqrt": FnSpec(_numeric(1, "float64"), _domain(pc.sqrt, lambda x: pc.greater_equal(x, 0)),
                   signature="sqrt(x) -> float64, null for x < 0"),
    "clip": FnSpec(_numeric(3), _clip, signature="clip(x, lo, hi)"),
    "lower": FnSpec(_lower_type, lambda node, args: pc.utf8_lower(args[0]),
                    signature="lower(s)"),
    "concat": FnSpec(_concat_type, lambda node, args: pc.binary_join_element_wise(
        *(_cast(a, "string") for a in args), ""), signature="concat(a, b, ...)"),
    "date": FnSpec(_date_type, _date, signature="date(year, month, day)"),
}
