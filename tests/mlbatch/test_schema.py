import json
from pathlib import Path

import pytest
import yaml

from mlbatch.schema import SchemaError, load_schema

FLIGHTS = Path(__file__).resolve().parents[2] / "schemas" / "flights.yaml"


def test_flights_schema_derives_features_and_inputs():
    s = load_schema(FLIGHTS)
    assert s.main == "flights"
    assert s.label.name == "delayed" and s.label.task == "binary_classification"
    assert "cross_route" in s.feature_names and "distance_bucket" in s.feature_names
    # joined and derived columns exist after preparation, typed
    cols = s.prepared_columns()
    assert cols["wx_temp"] == "float64" and cols["plane_age"] == "int64"
    assert cols["day_of_week"] == "int64"
    # the label source is not a transform input (serving needs no label)
    assert "arr_delay" not in s.transform_inputs()
    # a cross over a bucket feature reads the bucket's numeric source
    assert "distance" in s.transform_inputs()


LEGACY_LABEL = {"name": "delayed", "task": "binary_classification", "column": "arr_delay",
                "op": ">", "value": 15}


def write_schema(tmp_path, mutate):
    """The flights schema with `mutate` applied to its raw YAML, written to tmp_path."""
    raw = yaml.safe_load(FLIGHTS.read_text())
    mutate(raw)
    p = tmp_path / "schema.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["features"]["numeric"].append({"column": "no_such_col"}),
     "features.numeric[10].column: unknown column 'no_such_col'"),
    (lambda r: r["features"]["crosses"].append(
        {"name": "bad", "columns": ["carrier", "missing_col"], "hash_buckets": 8}),
     "cross 'bad' uses missing column 'missing_col'"),
    (lambda r: r["features"]["crosses"].append(
        {"name": "f", "columns": ["carrier", "distance"], "hash_buckets": 8}),
     "'distance' is a float column: cross its bucket feature"),
    (lambda r: r["features"]["crosses"].append(
        {"name": "one", "columns": ["carrier"], "hash_buckets": 8}),
     "a cross takes 2 or 3 columns, got 1"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(type="integer"),
     "tables.flights.columns.month.type: 'integer' is not one of"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(nullable=True),
     "tables.flights.columns.month: unknown field(s) ['nullable']"),
    (lambda r: r["joins"][0].update(keys=["origin"]),
     "joins[0].keys: must equal the declared key ['origin', 'time_hour']"),
    (lambda r: r.update(label=LEGACY_LABEL | {"column": "carrier"}),
     "label.column: 'carrier' is not a numeric"),
    (lambda r: r["split"].update(eval_fraction=1.5), "split.eval_fraction: must be in (0, 1)"),
    (lambda r: r.update(main="nope"), "main: 'nope' is not a declared table"),
    (lambda r: r["features"]["numeric"][0].update(scale="log"), "scale: 'log' not in"),
    (lambda r: r.pop("label"), "missing required field(s) ['label']"),
    # every field is typed at load, the error naming the field
    (lambda r: r.update(label=LEGACY_LABEL | {"value": "15"}),
     "label.value: expected a number, got '15'"),
    (lambda r: r.update(label={k: v for k, v in LEGACY_LABEL.items() if k != "value"}),
     "label.value: missing: a binary label is `arr_delay > value`"),
    (lambda r: r.update(label=LEGACY_LABEL | {"op": "=>"}), "label.op: a binary label needs op"),
    (lambda r: r["label"].update(expr='arr_delay > "15"'),
     ("label.expr: 'arr_delay > \"15\"': comparison '>' at position 10: cannot compare "
      "float64 with string")),
    (lambda r: r["label"].update(expr="arr_delay"),
     "label.expr: 'arr_delay' is float64; a binary label must be true/false"),
    (lambda r: r["label"].update(task="regression", expr="carrier"),
     "label.expr: 'carrier' is string; a regression label must be a number"),
    (lambda r: r["label"].update(column="arr_delay"), "label: give either expr: or column:"),
    (lambda r: r["label"].update(transform="log1p"),
     "label.transform: a label transform applies to regression labels only"),
    (lambda r: r["label"].update(name="distance"), "label.name: 'distance' is already a column"),
    (lambda r: r["derived"].append({"name": "x", "expr": "log(nope)"}),
     "derived[3].expr: 'log(nope)': unknown column 'nope' at position 4; columns: ["),
    (lambda r: r["derived"].append({"name": "x", "expr": "lower(distance)"}),
     "derived[3].expr: 'lower(distance)': lower() at position 0: argument 1 is float64"),
    (lambda r: r["derived"].append({"name": "x", "fn": "log", "args": ["distance"]}),
     "derived[3].fn: 'log' is not one of ['day_of_week', 'floordiv', 'subtract']"),
    (lambda r: r["derived"].append({"name": "x", "expr": "distance", "fn": "floordiv"}),
     "derived[3]: give either expr: or the legacy fn: and args:"),
    (lambda r: r["derived"].append({"name": "ts", "expr": "timestamp(time_hour)"}) or
     r["features"]["numeric"].append({"column": "ts"}),
     "features.numeric[10].column: 'ts' is a timestamp column: derive a number from it"),
    (lambda r: r.update(filters=["distance"]),
     "filters[0]: 'distance' is float64; a filter must be true/false"),
    (lambda r: r.update(filters="distance > 0"), "filters: expected a list"),
    (lambda r: r["split"].update(by="row"), "split.key: by: row hashes the whole record"),
    (lambda r: r["split"].update(by="random"), "split.by: 'random' is not one of"),
    (lambda r: r["split"].pop("key"), "split: give key: [columns], or by: row | content"),
    (lambda r: r["split"].update(eval_fraction="0.2"),
     "split.eval_fraction: expected a number, got '0.2'"),
    (lambda r: r["split"].update(salt=["x"]), "split.salt: expected a non-empty string"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(min="1"),
     "tables.flights.columns.month.min: expected a number, got '1'"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(min=13),
     "tables.flights.columns.month: min 13 is greater than max 12"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(required="yes"),
     "tables.flights.columns.month.required: expected true or false, got 'yes'"),
    (lambda r: r["tables"]["flights"].update(null_tokens=[0]),
     "tables.flights.null_tokens: expected a list of strings"),
    (lambda r: r["features"]["hashes"][0].update(hash_buckets=10.5),
     "features.hashes[0].hash_buckets: expected an integer, got 10.5"),
    (lambda r: r["features"]["buckets"][0].update(num_buckets=True),
     "features.buckets[0].num_buckets: expected an integer, got True"),
    (lambda r: r["features"]["vocabularies"][0].update(top_k=0),
     "features.vocabularies[0].top_k: must be >= 1, got 0"),
    (lambda r: r["features"]["numeric"][0].update(fill="zero"),
     "features.numeric[0].fill: must be 'mean' or a number, got 'zero'"),
    (lambda r: r["features"]["crosses"][0].update(hash_buckets="8"),
     "features.crosses[0].hash_buckets: expected an integer, got '8'"),
    (lambda r: r["features"].update(cross_rare_threshold=0),
     "features.cross_rare_threshold: must be >= 1, got 0"),
    (lambda r: r["limits"].update(max_dead_letters=-1) if "limits" in r else
     r.update(limits={"max_dead_letters": -1}), "limits.max_dead_letters: must be >= 0"),
    (lambda r: r.update(version=1.5), "version: expected an integer or a string"),
    (lambda r: r.update(identity=["year", "nope"]),
     "identity: unknown column 'nope' (not a column of table 'flights')"),
    (lambda r: r.update(identity=["year", 1]),
     "identity: expected a column name or a list of them"),
])
def test_schema_errors_name_the_field(tmp_path, mutate, message):
    with pytest.raises(SchemaError) as e:
        load_schema(write_schema(tmp_path, mutate))
    assert message in str(e.value)
    assert "schema.yaml" in str(e.value)


def test_missing_schema_file(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        load_schema(tmp_path / "nope.yaml")


def test_legacy_label_and_expression_label_load_alike(tmp_path):
    legacy = load_schema(write_schema(tmp_path, lambda r: r.update(label=LEGACY_LABEL)))
    expr = load_schema(FLIGHTS)
    for s in (legacy, expr):
        assert (s.label.name, s.label.task, s.label.column) == ("delayed",
                                                                "binary_classification",
                                                                "arr_delay")
        assert s.label.expr.text == "arr_delay > 15"
    assert (legacy.label.op, legacy.label.value) == (">", 15)


def test_tfx_taxi_label_and_a_log_price_label_are_writable(tmp_path):
    s = load_schema(write_schema(tmp_path, lambda r: r["label"].update(
        expr="arr_delay > 0.2 * air_time")))
    assert s.label.expr.type == "bool" and s.label.expr.columns == ("arr_delay", "air_time")
    assert s.label.column is None  # reads two columns
    s = load_schema(write_schema(tmp_path, lambda r: r["label"].update(
        task="regression", expr="log1p(where(arr_delay > 0, arr_delay, 0))")))
    assert s.label.expr.type == "float64" and s.label.column == "arr_delay"


# --- #20: values that would switch a check off, bounds, names -------------------------

@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["features"]["numeric"][0].update(fill=float("nan")),
     "features.numeric[0].fill: expected a finite number, got nan"),
    (lambda r: r["features"]["buckets"][0].update(fill=float("inf")),
     "features.buckets[0].fill: expected a finite number, got inf"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(min=float("nan")),
     "tables.flights.columns.month.min: expected a finite number, got nan"),
    (lambda r: r["tables"]["flights"]["columns"]["month"].update(max=float("nan")),
     "tables.flights.columns.month.max: expected a finite number, got nan"),
    (lambda r: r["features"]["hashes"][0].update(hash_buckets=10**30),
     "features.hashes[0].hash_buckets: must be <= 16,777,216, got 1000000000000000000000000000000"),
    (lambda r: r["features"]["crosses"][0].update(hash_buckets=2**24 + 1),
     "features.crosses[0].hash_buckets: must be <= 16,777,216, got 16777217"),
    (lambda r: r["features"]["buckets"][0].update(num_buckets=-3),
     "features.buckets[0].num_buckets: must be >= 2, got -3"),
    (lambda r: r["derived"].append({"name": "delay[min]", "expr": "dep_delay"}) or
     r["features"]["numeric"].append({"column": "delay[min]"}),
     "features.numeric[10].column: feature name 'delay[min]_z' contains [ ], which XGBoost "
     "refuses in feature names"),
    (lambda r: r["features"]["crosses"][0].update(name="a<b"),
     "features.crosses[0].name: feature name 'cross_a<b' contains <"),
])
def test_values_that_disable_checks_are_refused(tmp_path, mutate, message):
    with pytest.raises(SchemaError) as e:
        load_schema(write_schema(tmp_path, mutate))
    assert message in str(e.value)


def test_nan_written_in_yaml_is_refused_naming_the_field(tmp_path):
    text = FLIGHTS.read_text().replace("{type: int64, required: true, min: 1, max: 12}",
                                       "{type: int64, required: true, min: .nan, max: 12}")
    assert text.count(".nan") == 1
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SchemaError, match=r"s.yaml: tables.flights.columns.month.min: "
                                          r"expected a finite number, got nan"):
        load_schema(tmp_path / "s.yaml")


def test_duplicate_key_in_a_schema_is_refused_with_its_line(tmp_path):
    text = FLIGHTS.read_text().replace('  expr: "arr_delay > 15"',
                                       '  expr: "arr_delay > 15"\n  expr: "arr_delay > 60"')
    (tmp_path / "s.yaml").write_text(text)
    line = text.splitlines().index('  expr: "arr_delay > 60"') + 1
    with pytest.raises(SchemaError) as e:
        load_schema(tmp_path / "s.yaml")
    assert str(e.value) == (f"{tmp_path / 's.yaml'}: line {line}: duplicate key 'expr' (first "
                            f"on line {line - 1}); a key may appear once in a mapping")


# --- #23: null tokens per column; ISO times through preparation ----------------------

LEAGUES = """
name: leagues
main: games
tables:
  games:
    path: games.csv
    null_tokens: ["NA", ""]
    columns:
      game: {type: int64, required: true}
      league: {type: string, null_values: [""]}   # "NA": North America, a real code
      played_at: string
      score: float64
derived:
  - {name: hour_utc, expr: "hour(timestamp(played_at))"}
label: {name: high, task: binary_classification, expr: "score > 1"}
split: {key: game, eval_fraction: 0.5}
features:
  numeric: [{column: hour_utc}]
  vocabularies: [{column: league}]
"""


@pytest.fixture
def leagues(tmp_path):
    (tmp_path / "leagues.yaml").write_text(LEAGUES)
    return load_schema(tmp_path / "leagues.yaml")


def test_null_values_per_column_override_the_table(leagues):
    games = leagues.tables["games"]
    assert games.null_values("league") == ("",)
    assert games.null_values("score") == ("NA", "")
    assert games.per_column_nulls


def _league_rows(leagues, fmt):
    from beam_jobs.tabular import records
    games = leagues.tables["games"]
    if fmt == "csv":
        from beam_jobs.tabular.csvsplit import CsvSplitter
        header = ["game", "league", "played_at", "score"]
        lines = [b"1,NA,2017-01-01T06:00:42Z,NA\n", b"2,,2017-01-01T06:00:42.5+02:00,2\n",
                 b"3,EU,NA,3\n"]
        chunk, dead = records.parse_csv_lines(games, "games.csv", header, lines)
        # Arrow's CSV reader takes one null set per read: it leaves such a table to the
        # exact path (with the table's set alone it would read the league "NA" as null)
        assert records.fast_csv_chunk(games, "games.csv", header,
                                      CsvSplitter(next_line=2).feed(lines)) is None
    else:
        rows = [{"game": 1, "league": "NA", "played_at": "2017-01-01T06:00:42Z", "score": "NA"},
                {"game": 2, "league": "", "played_at": "2017-01-01T06:00:42.5+02:00", "score": 2},
                {"game": 3, "league": "EU", "played_at": "NA", "score": 3}]
        chunk, dead = records.parse_jsonl_chunk(games, "games.jsonl",
                                                [json.dumps(r).encode() for r in rows], 1)
    batch, dead2 = records.validate_chunk(games, chunk)
    assert dead + dead2 == []
    return batch


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_na_is_a_league_code_in_one_column_and_missing_in_the_others(leagues, fmt):
    batch = _league_rows(leagues, fmt)
    assert batch.column("league").to_pylist() == ["NA", None, "EU"]
    assert batch.column("score").to_pylist() == [None, 2.0, 3.0]
    assert batch.column("played_at").to_pylist() == ["2017-01-01T06:00:42Z",
                                                     "2017-01-01T06:00:42.5+02:00", None]


def test_an_unreadable_time_excludes_its_row_with_the_reason(leagues):
    import pyarrow as pa

    from beam_jobs.tabular import prepare
    batch = _league_rows(leagues, "csv")
    t = pa.Table.from_batches([batch]).set_column(
        2, "played_at", pa.array(["2017-01-01T06:00:42Z", "2017-01-01T06:00:42.5+02:00",
                                  "Jan 1st"]))
    t = t.set_column(3, "score", pa.array([2.0, 2.0, 3.0]))
    prepared, excluded = prepare.prepare(t, {}, leagues)
    assert prepared.column("hour_utc").to_pylist() == [6, 4]
    assert excluded.column("reason").to_pylist() == [
        "derived 'hour_utc': timestamp() at position 5: 'Jan 1st' is not an ISO 8601 time "
        "(e.g. 2017-01-01T06:00:42Z)"]
    assert excluded.column("example_id").to_pylist() == ["games.csv:4"]
