"""mlbatch.config: the one config-file loader and --set parser (exact values, named errors)."""
import pytest

from mlbatch.config import ConfigError, apply_sets, load_file, load_yaml, parse_value, shorten


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


# --- #20: the one safe YAML loader -------------------------------------------------------

BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"] +
                 [f"{k}: &{k} [{', '.join([f'*{p}'] * 10)}]"
                  for p, k in zip("abcdefgh", "bcdefghi")])  # 10**9 strings when expanded


def test_duplicate_keys_are_refused_with_key_and_lines(tmp_path):
    (tmp_path / "c.yaml").write_text("eta: 0.1\nparams:\n  depth: 3\n  depth: 6\n")
    with pytest.raises(ConfigError) as e:
        load_file(tmp_path / "c.yaml", flag="--params")
    assert str(e.value) == (f"--params {tmp_path / 'c.yaml'}: line 4: duplicate key 'depth' "
                            f"(first on line 3); a key may appear once in a mapping")
    with pytest.raises(ConfigError, match=r"<string>: line 1: duplicate key 'a' \(first on line 1\)"):
        load_yaml("{a: 1, b: 2, a: 3}")
    with pytest.raises(ConfigError, match="--set: line 1: duplicate key 'a'"):
        parse_value("{a: 1, a: 2}")
    assert parse_value("*undefined") == "*undefined"  # not YAML: stays the string it was


def test_merge_keys_may_be_overridden_once():
    doc = load_yaml("base: &b {depth: 3, eta: 0.1}\nrun:\n  <<: *b\n  depth: 6\n")
    assert doc == {"base": {"depth": 3, "eta": 0.1}, "run": {"depth": 6, "eta": 0.1}}


def test_alias_bombs_are_refused_before_expansion(tmp_path):
    (tmp_path / "bomb.yaml").write_text(BOMB)
    with pytest.raises(ConfigError) as e:
        load_file(tmp_path / "bomb.yaml")
    # 1 mapping + 9 keys + (11 + 111 + ... + 1,111,111,111) nodes
    assert str(e.value).endswith("bomb.yaml: the document expands to 1,234,567,909 nodes with "
                                 "its aliases (*name) resolved, more than 100,000: refused (an "
                                 "alias bomb?)")
    # aliases that stay small are YAML as usual
    assert load_yaml("a: &a [1, 2]\nb: [*a, *a]") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_messages_show_at_most_a_bounded_part_of_a_value():
    assert shorten("x" * 10_000) == "'" + "x" * 57 + "..." + "x" * 58 + "'"
    assert len(shorten(list(range(10**6)))) <= 120
    assert shorten([[[[[1]]]]]) == "[[[[...]]]]"
    assert shorten(2**1000) == "107150860718626732...4386837205668069376"


def test_every_yaml_reader_goes_through_the_safe_loader(tmp_path):
    """Pipeline files and search spaces refuse a duplicate key too (the last one used to win
    silently: a step's arguments or a hyperparameter's range changed meaning)."""
    from pipelines.spec import SpecError, parse_pipeline
    from ray_jobs.tune.space import SearchSpaceError, load_space
    with pytest.raises(SpecError, match=r"p.yaml: line 3: duplicate key 'steps'"):
        parse_pipeline("pipeline: p\nsteps: {}\nsteps: {}\n", "p.yaml")
    (tmp_path / "space.yaml").write_text("eta: {loguniform: [1e-3, 0.3]}\neta: 0.1\n")
    with pytest.raises(SearchSpaceError, match=r"space.yaml: line 2: duplicate key 'eta'"):
        load_space(tmp_path / "space.yaml")
