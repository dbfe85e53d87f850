import pytest
from ray import tune

from ray_jobs.tune.space import SearchSpaceError, load_space, parse_space
from ray_jobs.xgboost import tuning


def test_every_kind_parses_to_its_tune_domain():
    space = parse_space({"eta": {"loguniform": [0.01, 0.3]}, "depth": {"randint": [3, 11]},
                         "sub": {"uniform": [0.5, 1.0]}, "gp": {"choice": ["a", "b"]},
                         "max_bin": 256})
    assert isinstance(space["eta"].get_sampler(), tune.search.sample.LogUniform)
    assert (space["eta"].lower, space["eta"].upper) == (0.01, 0.3)
    assert (space["depth"].lower, space["depth"].upper) == (3, 11)  # hi exclusive
    assert isinstance(space["sub"], tune.search.sample.Float)
    assert space["gp"].categories == ["a", "b"]
    assert space["max_bin"] == 256
    assert all(3 <= space["depth"].sample() < 11 for _ in range(50))


@pytest.mark.parametrize("entry, match", [
    ({"normal": [0, 1]}, r"entry 'x': unknown distribution 'normal'"),
    ({"loguniform": [0, 1]}, r"entry 'x': loguniform needs 0 < lo"),
    ({"uniform": [1, 1]}, r"entry 'x': uniform needs finite lo < hi"),
    ({"uniform": [0]}, r"entry 'x': uniform needs \[lo, hi\] numbers"),
    ({"randint": [1.5, 4]}, r"entry 'x': randint bounds must be integers"),
    ({"choice": []}, r"entry 'x': choice needs a non-empty list"),
    ({"uniform": [0, 1], "choice": [1]}, r"entry 'x': expected exactly one of"),
    ([1, 2], r"entry 'x': a bare list is ambiguous"),
])
def test_bad_entries_are_named(entry, match):
    with pytest.raises(SearchSpaceError, match=match):
        parse_space({"x": entry}, source="s.yaml")


def test_files(tmp_path):
    with pytest.raises(SearchSpaceError, match="does not exist"):
        load_space(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("eta: [unclosed\n")
    with pytest.raises(SearchSpaceError, match="cannot parse"):
        load_space(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SearchSpaceError, match="expected a mapping"):
        load_space(tmp_path / "list.yaml")


def test_xgboost_default_space_covers_the_issue_parameters():
    space = load_space(tuning.SEARCH_SPACE_FILE)
    assert set(space) == {"eta", "max_depth", "min_child_weight", "subsample",
                          "colsample_bytree", "lambda", "alpha"}
