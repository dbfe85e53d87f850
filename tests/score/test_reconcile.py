"""The scoring job's count checks (pure): what must add up before anything is committed."""
from beam_jobs.score.artifacts import quality, stages
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
