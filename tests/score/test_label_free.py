"""Label-free serving: the raw slice with the label's source and every column no feature
reads removed is scored with the same predictions, bit for bit, and no metrics; a needed
column missing is a usage error naming it; two identical runs give one digest."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from beam_jobs.tabular import serving
from beam_jobs.score.__main__ import main
from mlbatch.artifacts import read_manifest
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.predictions import load_predictions
from tests.conftest import FLIGHTS_SLICE_ROWS
from tests.score.conftest import score

# the flights columns serving needs (the transform's inputs, through derived columns
# and joins, and the join keys); the label (arr_delay) and 8 more are not among them
NEEDED = {"flights": ["year", "month", "day", "sched_dep_time", "carrier", "tailnum", "origin",
                      "dest", "distance", "time_hour"],
          "weather": ["origin", "temp", "dewp", "humid", "wind_speed", "precip", "pressure",
                      "visib", "time_hour"],
          "planes": ["tailnum", "year", "manufacturer", "seats"]}


def _keep_columns(src: Path, dst: Path, keep: list[str]) -> None:
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keep, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def label_free_copy(raw: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    """The raw slice holding only the NEEDED columns (less `drop`), in reversed order."""
    dst.mkdir()
    for table, keep in NEEDED.items():
        _keep_columns(raw / f"{table}.csv", dst / f"{table}.csv",
                      [c for c in reversed(keep) if c not in drop])
    return dst


@pytest.fixture(scope="module")
def label_free(flights_slice, flights_features, flights_xgboost, tmp_path_factory):
    """(raw dir, [output dir, summary] x 2): the label-free copy scored twice."""
    tmp = tmp_path_factory.mktemp("label_free")
    raw = label_free_copy(flights_slice, tmp / "raw")
    runs = [(tmp / f"out{i}", score(flights_features, flights_xgboost, raw, tmp / f"out{i}"))
            for i in (1, 2)]
    return raw, runs


def _by_line(out: Path) -> dict[int, float]:
    t = load_predictions(out).read_table()
    lines = [int(k.rsplit(":", 1)[1]) for k in t.column("example_id").to_pylist()]
    return dict(zip(lines, t.column("prediction").to_pylist()))


def test_needed_columns_are_the_transforms_sources(flights_features):
    schema = serving.schema_of(load_feature_set(flights_features, check_columns=False))
    assert serving.needed_columns(schema) == NEEDED
    assert "arr_delay" not in NEEDED["flights"]  # the label's only source


def test_label_free_rows_get_the_same_predictions_bit_for_bit(label_free, flights_scored):
    _, [(out, summary), _] = label_free
    with_label = _by_line(flights_scored[0])
    without = _by_line(out)
    assert len(without) == FLIGHTS_SLICE_ROWS
    assert sorted(without) == sorted(with_label)
    a = np.array([with_label[k] for k in sorted(with_label)])
    b = np.array([without[k] for k in sorted(with_label)])
    assert a.tobytes() == b.tobytes()  # bit for bit, not approximately
    table = load_predictions(out).read_table()
    assert table.column("label").null_count == FLIGHTS_SLICE_ROWS
    m = summary["metrics"]
    assert (m["rows_read"], m["rows_scored"], m["rows_dead_letter"], m["rows_labelled"]) == (
        FLIGHTS_SLICE_ROWS, FLIGHTS_SLICE_ROWS, 0, 0)
    assert "auc" not in m and "logloss" not in m  # predictions only: no metric without labels
    assert "auc" in flights_scored[1]["metrics"]


def test_two_identical_runs_give_one_digest(label_free):
    _, [(out1, s1), (out2, s2)] = label_free
    m1, m2 = read_manifest(str(out1)), read_manifest(str(out2))
    assert m1.digest == m2.digest
    assert "timings" not in (out1 / "summary.json").read_text()
    assert s1["timings"]["pipeline_s"] > 0  # measured, kept outside the digested files


def test_a_needed_column_missing_is_a_usage_error(flights_slice, flights_features,
                                                  flights_xgboost, tmp_path, capsys):
    raw = label_free_copy(flights_slice, tmp_path / "raw", drop=("distance",))
    code = main(["--features", str(flights_features), "--model", str(flights_xgboost),
                 "--input", str(raw), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "table 'flights' needs column(s) ['distance']" in err
    assert str(raw / "flights.csv") in err
    assert not (tmp_path / "out").exists()


def test_label_free_rows_are_monitored_like_labelled_ones(label_free, flights_monitor_skew,
                                                          flights_features, flights_xgboost,
                                                          tmp_path):
    """The monitor (skew mode, with the model) on the label-free copy: every feature's and
    the prediction's distance as on the labelled raw files; no label drift without labels."""
    from beam_jobs.monitor.__main__ import main as monitor
    from mlbatch.artifacts.monitor import load_monitor

    raw, _ = label_free
    code = monitor(["--baseline", str(flights_features), "--input", str(raw), "--output",
                    str(tmp_path / "mon"), "--model", str(flights_xgboost)])
    assert (code, flights_monitor_skew[0]) == (0, 0)
    got, want = load_monitor(tmp_path / "mon").drift, load_monitor(flights_monitor_skew[1]).drift
    assert got["verdict"] == "ok" and got["counts"]["prepared"] == FLIGHTS_SLICE_ROWS
    key = lambda d: {(f["stage"], f["name"]): (f["distance"], f["n_current"])  # noqa: E731
                     for f in d["features"]}
    assert len(key(got)) == 43 and key(got) == key(want)
    assert got["prediction_drift"]["distance"] == want["prediction_drift"]["distance"]
    assert got["label_drift"] is None and want["label_drift"]["n_current"] > 0


def test_needed_columns_follow_as_of_times_and_key_expressions(tmp_path):
    """An as-of weather join needs the main row's time (here also `minute`) and the
    lookup's time; a key expression (`from:`) needs the columns it reads."""
    import yaml

    from mlbatch.schema import load_schema
    doc = yaml.safe_load((Path(__file__).parents[2] / "schemas" / "flights.yaml").read_text())
    doc["joins"] = [
        {"table": "weather", "keys": ["origin"], "prefix": "wx_",
         "as_of": {"time": "timestamp(time_hour) + minutes(minute)",
                   "lookup_time": "timestamp(time_hour)", "tolerance": "3h"}},
        {"table": "planes", "keys": ["tailnum"], "from": ["lower(tailnum)"], "prefix": "plane_"}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    need = serving.needed_columns(load_schema(tmp_path / "s.yaml"))
    assert need["flights"] == ["year", "month", "day", "sched_dep_time", "carrier", "tailnum",
                               "origin", "dest", "distance", "minute", "time_hour"]
    assert need["weather"] == NEEDED["weather"]
    assert need["planes"] == NEEDED["planes"]
