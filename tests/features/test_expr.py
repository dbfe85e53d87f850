"""The expression language (mlbatch.expr): parser, type checker, evaluator."""
import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from mlbatch.expr import ExprError, compile_expr, evaluate, parse, quote_column

COLUMNS = {"a": "int64", "b": "int64", "x": "float64", "s": "string", "ts": "string",
           "y": "int64", "m": "int64", "d": "int64", "fare": "float64", "tips": "float64",
           "odd name": "int64"}
TABLE = pa.table({
    "a": [7, -7, None, 5], "b": [2, 2, 2, 0], "x": [1.5, -2.0, None, 0.0],
    "s": ["A", "b", None, "Cd"],
    "ts": ["2013-01-01 05:00:00", "2013-06-15T23:59:00", "not a time", None],
    "y": [2013, 2013, 2013, 2012], "m": [1, 1, 12, 2], "d": [1, 5, 31, 30],
    "fare": [10.0, 10.0, None, 0.0], "tips": [2.5, 1.0, 1.0, 0.0], "odd name": [1, 2, 3, 4]})


def run(text: str):
    e = compile_expr(text, COLUMNS)
    return e.type, evaluate(e, TABLE).to_pylist()


@pytest.mark.parametrize("text, type_, values", [
    # arithmetic: int / int is float; int // int stays int (floored); float // stays float
    ("a + b * 2", "int64", [11, -3, None, 5]),
    ("a / b", "float64", [3.5, -3.5, None, None]),  # / 0 -> null
    ("a // b", "int64", [3, -4, None, None]),  # floor, as Python: -7 // 2 == -4
    ("x // 1", "float64", [1.0, -2.0, None, 0.0]),
    ("x // 0", "float64", [None, None, None, None]),
    ("a - x", "float64", [5.5, -5.0, None, 5.0]),
    ("-a + 1", "int64", [-6, 8, None, -4]),
    ("(a + 1) * -2", "int64", [-16, 12, None, -12]),
    ("1.5e1 - 5", "float64", [10.0] * 4),
    # comparisons and three-valued logic
    ("a > 3 and x < 0", "bool", [False, False, None, False]),
    ("a > 3 or x < 0", "bool", [True, True, None, True]),
    ("not (a > 3) or is_null(a)", "bool", [False, True, True, False]),
    ("s == 'b'", "bool", [False, True, None, False]),
    ("x >= a", "bool", [False, True, None, False]),
    ("tips > 0.2 * fare", "bool", [True, False, None, False]),  # TFX taxi's label
    # functions
    ("where(a > 0, a, 0.5)", "float64", [7.0, 0.5, None, 5.0]),
    ("coalesce(a, b, 0)", "int64", [7, -7, 2, 5]),
    ("coalesce(x, null)", "float64", [1.5, -2.0, None, 0.0]),
    ("abs(a)", "int64", [7, 7, None, 5]),
    ("log(x)", "float64", [math.log(1.5), None, None, None]),  # x <= 0 -> null
    ("log1p(x)", "float64", [math.log1p(1.5), None, None, 0.0]),  # x <= -1 -> null
    ("sqrt(x)", "float64", [math.sqrt(1.5), None, None, 0.0]),
    ("exp(b)", "float64", [math.exp(2)] * 3 + [1.0]),
    ("clip(a, -1, 6)", "int64", [6, -1, None, 5]),
    ("clip(x, 0, 1.0)", "float64", [1.0, 0.0, None, 0.0]),
    ("lower(s)", "string", ["a", "b", None, "cd"]),
    ("concat(s, '_', a)", "string", ["A_7", "b_-7", None, "Cd_5"]),
    ("concat('it''s', \"\\\"\")".replace("''", "\\'"), "string", ["it's\""] * 4),
    ("`odd name` * 10", "int64", [10, 20, 30, 40]),
    # time: ISO 8601 strings, or an explicit strptime format; ISO day_of_week (Monday = 0)
    ("hour(timestamp(ts))", "int64", [5, 23, None, None]),
    ("minute(timestamp(ts))", "int64", [0, 59, None, None]),
    ("day_of_week(timestamp(ts))", "int64", [1, 5, None, None]),
    ("month(timestamp(ts)) + day(timestamp(ts))", "int64", [2, 21, None, None]),
    ("year(timestamp('01/02/2020', '%d/%m/%Y'))", "int64", [2020] * 4),
    ("day_of_week(y, m, d)", "int64", [1, 5, 1, None]),  # 2012-02-30 does not exist
    ("day_of_year(date(y, m, d))", "int64", [1, 5, 365, None]),
    ("3", "int64", [3, 3, 3, 3]),
])
def test_evaluate_exact_values(text, type_, values):
    got_type, got = run(text)
    assert got_type == type_
    assert got == values


def test_timestamp_values_and_date():
    t, got = run("date(y, m, d)")
    assert t == "timestamp"
    assert got == [dt.datetime(2013, 1, 1), dt.datetime(2013, 1, 5), dt.datetime(2013, 12, 31),
                   None]


def test_date_is_exact_far_from_1970():
    years = list(range(1600, 2401, 7))
    table = pa.table({"y": years, "m": [3] * len(years), "d": [1] * len(years)})
    e = compile_expr("day_of_week(y, m, d)", {"y": "int64", "m": "int64", "d": "int64"})
    assert evaluate(e, table).to_pylist() == [dt.date(y, 3, 1).weekday() for y in years]


def test_integer_overflow_is_an_error_not_a_wrap():
    e = compile_expr("a * 10", {"a": "int64"})
    with pytest.raises(pa.ArrowInvalid, match="overflow"):
        evaluate(e, pa.table({"a": [2 ** 62]}))


def test_floor_division_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.integers(-1000, 1000, 500), rng.integers(-30, 30, 500)
    b[b == 0] = 7
    got = evaluate(compile_expr("a // b", {"a": "int64", "b": "int64"}),
                   pa.table({"a": a, "b": b})).to_pylist()
    assert got == np.floor_divide(a, b).tolist()


def test_parse_precedence():
    tree = parse("a + b * c > 1 and not d or e")
    assert (tree.kind, tree.name) == ("op", "or")
    assert tree.args[0].name == "and" and tree.args[0].args[1].name == "not"
    assert tree.args[0].args[0].name == "gt"
    assert tree.args[0].args[0].args[0].args[1].name == "mul"


def test_columns_read_and_quoting():
    e = compile_expr("coalesce(a, b) + a", COLUMNS)
    assert e.columns == ("a", "b")
    assert quote_column("dep_hour") == "dep_hour"
    assert quote_column("odd name") == "`odd name`" and quote_column("not") == "`not`"


@pytest.mark.parametrize("text, message", [
    ("a +", "unexpected 'end of expression' at position 3"),
    ("a $ b", "unexpected character '$' at position 2"),
    ("(a + 1", "expected ')' at position 6"),
    ("a < b < 3", "chained comparison"),
    ("f(a)", "unknown function 'f' at position 0; functions: ['abs', 'clip'"),
    ("add(a, b)", "unknown function 'add'"),  # operators are not callable by their names
    ("nope + 1", "unknown column 'nope' at position 0; columns: ['a', 'b', 'd'"),
    ("a > 'x'", "comparison '>' at position 2: cannot compare int64 with string"),
    ("s + 1", "'+' at position 2: argument 1 is string, needs a number"),
    ("a and b", "'and' at position 2: argument 1 is int64, needs a boolean"),
    ("where(a, 1, 2)", "where() at position 0: argument 1 is int64, needs a boolean"),
    ("where(a > 1, 1, 's')", "mixes int64 and string"),
    ("log(a, b)", "log() at position 0: takes 1 argument(s), got 2"),
    ("a == null", "use is_null(x)"),
    ("hour(ts)", "hour() at position 0: argument 1 is string, needs a timestamp"),
    ("timestamp(ts, s)", "the format (argument 2) must be a string literal"),
    ("'a\\q'", "unknown escape \\q"),
    ("null", "always null"),
    ("", "non-empty string"),
])
def test_errors_name_the_problem(text, message):
    with pytest.raises(ExprError) as e:
        compile_expr(text, COLUMNS)
    assert message in str(e.value)
