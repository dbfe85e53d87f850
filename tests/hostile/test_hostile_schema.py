"""Hostile schema, YAML and expression input (#20): each is refused before any pipeline
starts, by the feature job's own command line (`main(argv)`, in this process), with exit
code 2 and a message naming the file, the field or YAML line, and the problem; never a
traceback, a hang, a MemoryError or a silently changed meaning."""
import pytest

from tests.conftest import REPO_ROOT, feature_job_main

FLIGHTS = (REPO_ROOT / "schemas" / "flights.yaml").read_text()
LABEL = '  expr: "arr_delay > 15"\n'
DERIVED = '  - {name: plane_age, expr: "year - plane_year"}\n'
HASHES = "    - {column: tailnum, hash_buckets: 1000}\n"
MONTH = "{type: int64, required: true, min: 1, max: 12}"
BOMB = "".join(f"&{k} [{', '.join([f'*{p}'] * 10)}]\n" for p, k in zip("abcdefgh", "bcdefghi"))


def edit(old: str, new: str) -> str:
    """flights.yaml with `old` (which must occur once) replaced by `new`."""
    assert FLIGHTS.count(old) == 1, old
    return FLIGHTS.replace(old, new)


def line_of(text: str) -> int:
    """The 1-based line of flights.yaml on which `text` (which occurs once) starts."""
    return FLIGHTS[:FLIGHTS.index(text)].count("\n") + 1


def derive(expr: str) -> str:
    return edit(DERIVED, DERIVED + f"  - {{name: extra, expr: {expr!r}}}\n".replace("'", '"'))


CASES = {  # kind -> (schema text or bytes, the message (or its parts) after "error: <file>: ")
    "nan fill": (edit("{column: wx_precip, scale: z_score, fill: 0}",
                      "{column: wx_precip, scale: z_score, fill: .nan}"),
                 "features.numeric[5].fill: expected a finite number, got nan"),
    "nan bound": (edit(MONTH, MONTH.replace("max: 12", "max: .nan")),
                  "tables.flights.columns.month.max: expected a finite number, got nan"),
    "duplicate key": (edit(LABEL, LABEL + '  expr: "arr_delay > 60"\n'),
                      "line 83: duplicate key 'expr' (first on line 82); a key may appear once "
                      "in a mapping"),
    "duplicate key in a flow mapping": (
        edit("{column: tailnum, hash_buckets: 1000}", "{column: tailnum, column: dest}"),
        f"line {line_of(HASHES)}: duplicate key 'column' (first on line {line_of(HASHES)})"),
    # on main the salt's error message repr()s 10**9 strings: MemoryError
    "alias bomb": (edit("salt: flights-v1", "salt: [&a [x, x, x, x, x, x, x, x, x, x], "
                        + BOMB.replace("\n", ", ").rstrip(", ") + "]"),
                   "nodes with its aliases (*name) resolved, more than 100,000: refused "
                   "(an alias bomb?)"),
    "nested parentheses": (derive("(" * 100 + "year" + ")" * 100),
                           ("derived[3].expr: '(((((", "))))': nested deeper than 40 levels at "
                                                       "position 40")),
    "huge integer literal": (derive("year * 100000000000000000000"),
                             "derived[3].expr: 'year * 100000000000000000000': integer "
                             "100000000000000000000 at position 7 does not fit in int64"),
    "constant overflow": (derive("year + 9223372036854775807 * 2"),
                          "derived[3].expr: 'year + 9223372036854775807 * 2': '*' at "
                          "position 27 overflows int64"),
    "division by zero in a constant": (derive("distance * (1 / 0)"),
                                       "derived[3].expr: 'distance * (1 / 0)': the constant "
                                       "part at position 14 is null for every row"),
    "huge hash_buckets": (edit(HASHES, HASHES.replace("1000", "99999999999999999999999")),
                          "features.hashes[0].hash_buckets: must be <= 16,777,216, got "
                          "99999999999999999999999"),
    "negative bucket count": (edit("{column: distance, num_buckets: 10}",
                                   "{column: distance, num_buckets: -10}"),
                              "features.buckets[0].num_buckets: must be >= 2, got -10"),
    "feature name XGBoost refuses": (
        edit(DERIVED, DERIVED + '  - {name: "age[y]", expr: "plane_age"}\n').replace(
            "{column: plane_seats, scale: z_score, fill: mean}",
            "{column: plane_seats, scale: z_score, fill: mean}\n    - {column: \"age[y]\"}"),
        "features.numeric[10].column: feature name 'age[y]_z' contains [ ], which XGBoost "
        "refuses in feature names"),
    # a legacy derived column over it raised ExprError (a traceback) from quote_column
    "backquote in a column name": (
        edit("      carrier:        {type: string, required: true}\n",
             "      carrier:        {type: string, required: true}\n      \"a`b\": int64\n"
             ).replace(DERIVED, DERIVED + "  - {name: x, fn: floordiv, args: [\"a`b\", 2]}\n"),
        "tables.flights.columns.a`b: 'a`b' contains a backquote (`), which expressions use to "
        "quote column names"),
    # `x in mapping` with a list raised TypeError (unhashable type: 'list')
    "a list where a name belongs": (edit("main: flights", "main: [flights]"),
                                    "main: ['flights'] is not a declared table"),
    "a mapping where a scale belongs": (edit("{column: distance, scale: z_score}",
                                             "{column: distance, scale: {z: 1}}"),
                                        "features.numeric[0].scale: {'z': 1} not in"),
    "unknown key": (edit("  task: binary_classification\n", "  task: binary_classification\n"
                                                            "  treshold: 15\n"),
                    "label: unknown field(s) ['treshold']; allowed: ["),
    "wrong type": (edit("eval_fraction: 0.2", "eval_fraction: '0.2'"),
                   "split.eval_fraction: expected a number, got '0.2'"),
    "label that is also a feature": (edit("  name: delayed\n", "  name: cross_route\n"),
                                     "label.name: 'cross_route' collides with a feature name"),
    "unknown column": (derive("log(nope)"),
                       "derived[3].expr: 'log(nope)': unknown column 'nope' at position 4"),
    "unknown time zone": (edit(DERIVED, DERIVED + "  - {name: extra, expr: \"hour(date(year, "
                                                  "month, day), 'Mars/Olympus')\"}\n"),
                          "derived[3].expr: \"hour(date(year, month, day), 'Mars/Olympus')\": "
                          "hour() at position 0: unknown time zone 'Mars/Olympus'"),
    "not an expression": (edit('expr: "arr_delay > 15"', "expr: 15"),
                          "label.expr: expected an expression string, got 15"),
    "tab indentation": (edit("  name: delayed\n", "\tname: delayed\n"),
                        "cannot parse (while scanning for the next token\nfound character "
                        "that cannot start any token\n  in \"hostile.yaml\", line 80, column 1)"),
    "not UTF-8": (edit("name: flights", "name: fl\xe9ghts").encode("latin-1"),
                  "not UTF-8 text (byte "),
    "not a mapping": ("- name: flights\n- main: flights\n",
                      "schema: expected a mapping, got list"),
    "empty document": ("# nothing here\n", "schema: expected a mapping, got NoneType"),
    "nested too deeply": ("name: " + "[" * 100_000 + "]" * 100_000 + "\n",
                          "cannot parse (while increasing flow level\nexceeded maximum nesting "
                          "depth\n  in \"hostile.yaml\", line 1, column "),
    "nested deeper than 100": ("name: " + "[" * 150 + "]" * 150 + "\n",
                               "line 1: nested deeper than 100 levels"),
    "huge value in a message": (edit("salt: flights-v1", "salt: [" + "x, " * 5_000 + "x]"),
                                "split.salt: expected a non-empty string, got ['x', 'x', 'x', "
                                "'x', 'x', 'x', ...]"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_hostile_schema_exits_2_naming_the_problem(kind, tmp_path, capsys):
    text, message = CASES[kind]
    schema = tmp_path / "hostile.yaml"
    if isinstance(text, bytes):
        schema.write_bytes(text)
    else:
        schema.write_text(text)
    (tmp_path / "in").mkdir()
    code, err = feature_job_main(capsys, tmp_path / "in", tmp_path / "out", schema=schema)
    assert code == 2
    assert err.startswith(f"error: {schema}: "), err[:300]
    for part in (message,) if isinstance(message, str) else message:
        assert part in err, err[:600]
    assert len(err) < 2_000  # every value in a message is bounded
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any output is claimed

