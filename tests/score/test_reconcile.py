"""Pure parts of the scoring job: the count checks that must hold before anything is
committed, the metrics, the Vertex JSON lines."""
from beam_jobs.score.artifacts import stages
from mlbatch.metrics import labelled_quality as quality
from mlbatch.schema import load_schema
from tests.conftest import REPO_ROOT

SCHEMA = load_schema(REPO_ROOT / "schemas" / "flights.yaml")
GOOD = {"flights_read": 10, "flights_lines": 11, "flights_valid": 8, "flights_dead_letter": 3,
        "filtered": 1, "prepared": 7, "scored": 7, "weather_read": 5, "weather_valid": 4,
        "weather_dead_letter": 1, "planes_read": 2, "planes_valid": 2,
        "planes_duplicate_keys_dropped": 1}


def test_counts_that_add_up_pass_every_check():
    tables, checks = stages(GOOD, SCHEMA)
    assert all(checks.values()), checks
    assert tables["flights"] == {"read": 10, "lines": 11, "valid": 8, "dead_letter": 3,
                                 "filtered": 1, "prepared": 7, "scored": 7}
    assert tables["planes"] == {"read": 2, "lines": 0, "valid": 2, "dead_letter": 0,
                                "duplicate_keys_dropped": 1}


def test_a_lost_row_fails_the_checks_that_name_it():
    _, checks = stages({**GOOD, "scored": 6}, SCHEMA)
    assert sorted(k for k, ok in checks.items() if not ok) == [
        "flights: prepared == scored", "read == scored + dead_letter"]
    _, checks = stages({**GOOD, "weather_valid": 3}, SCHEMA)
    assert [k for k, ok in checks.items() if not ok] == ["weather: read == valid + dead_letter"]


def test_quality_metrics_by_task():
    assert quality("binary_classification", [0.0, 1.0, 1.0], [0.2, 0.9, 0.1])["auc"] == 0.5
    assert quality("regression", [1.0, 3.0], [2.0, 3.0]) == {"rmse": 0.5 ** 0.5, "mae": 0.5}
    assert quality("regression", [], []) == {}


def test_vertex_lines_are_json_with_exact_predictions():
    import json

    import pyarrow as pa

    from beam_jobs.score.pipeline import vertex_lines
    ids = ["/d/flights.csv:2", "/d/flights.csv:3", '/d/"odd".csv:4', "/d/é.csv:5"]
    preds = [0.1, 3.0, 1 / 3, 2.5e-9]
    for n in (2, 4):  # Arrow kernels; json.dumps for ids JSON must escape
        lines = vertex_lines(pa.table({"example_id": ids[:n], "prediction": preds[:n]}))
        assert [json.loads(line) for line in lines.split("\n")] == [
            {"key": k, "prediction": p} for k, p in zip(ids[:n], preds[:n])]
