"""mlbatch.config: the one config-file loader and --set parser (exact values, named errors)."""
import pytest

from mlbatch.config import ConfigError, apply_sets, load_file, parse_value


@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3), ("-2E+4", -2e4), ("3", 3), ("0.5", 0.5), (".5", 0.5), ("true", True),
    ("null", None), ("[64, 32]", [64, 32]), ("cpu", "cpu"), ("1e-3x", "1e-3x"),
    ("[unclosed", "[unclosed")])
def test_values_are_yaml_1_2(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_sets_nest_dotted_keys_and_coerce_numbers():
    base = {"params": {"max_depth": 6}, "num_actors": 1}
    out = apply_sets(base, ["params.eta=1e-3", "num_actors=2", "a.b.c=x"])
    assert out == {"params": {"max_depth": 6, "eta": 0.001}, "num_actors": 2,
                   "a": {"b": {"c": "x"}}}
    assert base == {"params": {"max_depth": 6}, "num_actors": 1}  # not modified
    with pytest.raises(ConfigError, match=r"--set 'eta': expected key=value"):
        apply_sets({}, ["eta"])
    with pytest.raises(ConfigError, match=r"--set 'num_actors.x=1': num_actors is 1"):
        apply_sets({"num_actors": 1}, ["num_actors.x=1"])


def test_files_yaml_and_json(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-3\nhidden_sizes: [8, 4]\n")
    (tmp_path / "c.json").write_text('{"eta": 1e-3}')
    assert load_file(tmp_path / "c.yaml") == {"learning_rate": 0.001, "hidden_sizes": [8, 4]}
    assert load_file(tmp_path / "c.json") == {"eta": 0.001}
    (tmp_path / "empty.yaml").write_text("")
    assert load_file(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"--params .*list.yaml: expected a mapping"):
        load_file(tmp_path / "list.yaml", flag="--params")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="--config .*bad.yaml: cannot parse"):
        load_file(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="--config: no such file"):
        load_file(tmp_path / "nope.yaml")
