"""``python -m pipelines compare RUN_A RUN_B`` (issue #22 point 3) on two runs of a
pipeline of tiny jobs (``tests.pipeline.toy_job``): B scores another period and changes
one parameter of one step; the comparison names exactly what changed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import __main__ as cli
from pipelines.compare import CompareError, compare_runs
from pipelines.runner import RunOptions, Runner
from pipelines.spec import parse_pipeline
from tests.pipeline import toy_job

SPEC = """
pipeline: toy
steps:
  train: {{job: toy, args: {{text: {train}}}}}
  score: {{job: toy, args: {{text: scored, inputs: ["${{train}}"], period: "{period}"}}}}
"""


def _run(root: Path, name: str, train: str, period: str) -> str:
    spec = root / f"{name}.yaml"
    spec.write_text(SPEC.format(train=train, period=period))
    runner = Runner(parse_pipeline(spec.read_text(), path=str(spec)), str(root / name),
                    RunOptions(max_parallel=2))
    assert runner.run(), json.loads((root / name / "run.json").read_text())
    return str(root / name)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        toy_job.register(mp)
        return (_run(root, "a", train="model-v1", period="2013-10"),
                _run(root, "b", train="model-v22", period="2013-11"))


def _rows(comparison: dict) -> dict[tuple[str, str, str], dict]:
    return {(r["section"], r["step"], r["field"]): r for r in comparison["rows"]}


def test_compare_names_the_changed_parameter_period_data_and_metrics(two_runs):
    comparison = compare_runs(*two_runs)
    rows = _rows(comparison)
    assert rows[("params", "train", "text")] | {} == {
        "section": "params", "step": "train", "field": "text", "a": "model-v1",
        "b": "model-v22", "changed": True}
    assert rows[("periods", "score", "params.period")]["a"] == "2013-10"
    assert rows[("periods", "score", "params.period")]["b"] == "2013-11"
    assert rows[("periods", "score", "config.period")]["changed"] is True
    # train's new output is score's new input; the metrics follow the text
    assert rows[("data", "train", "output")]["changed"] is True
    assert rows[("data", "score", "input.train")]["a"] == rows[("data", "train", "output")]["a"]
    assert rows[("metrics", "train", "chars")] | {} == {
        "section": "metrics", "step": "train", "field": "chars", "a": 9, "b": 10,
        "changed": True}
    assert rows[("metrics", "score", "lines")]["a"] == 2 == rows[("metrics", "score", "lines")]["b"]
    assert rows[("metrics", "score", "lines")]["changed"] is False
    # same code, same library versions, same job
    assert not any(r["changed"] for r in comparison["rows"] if r["section"] == "code")
    assert rows[("code", "train", "code_version")]["a"].startswith("sha256:")
    assert comparison["changed"] == [
        "run spec_digest", "train: params text", "train: data output", "train: metrics chars",
        "score: params period", "score: data input.train", "score: data output",
        "score: periods params.period", "score: periods config.period",
        "score: metrics chars"]


def test_compare_cli_prints_changes_and_every_metric(two_runs, capsys):
    assert cli.main(["compare", *two_runs]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"A: {two_runs[0]}  (toy, started ")
    assert lines[0].endswith(", succeeded)")
    assert any(ln.split() == ["train", "text", "model-v1", "model-v22", "changed"]
               for ln in lines)
    assert any(ln.split() == ["train", "chars", "9", "10", "changed", "+1", "(+11.1%)"]
               for ln in lines)
    assert any(ln.split() == ["score", "lines", "2", "2"] for ln in lines)  # unchanged metric
    assert "code (" in out and "unchanged rows not shown)" in out
    assert "what changed (10):" in out and "  score: periods params.period" in lines
    assert cli.main(["compare", *two_runs, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"][1] == "train: params text"


def test_compare_refuses_a_directory_without_a_run(two_runs, tmp_path, capsys):
    with pytest.raises(CompareError, match=f"{tmp_path}: no run.json"):
        compare_runs(two_runs[0], str(tmp_path))
    (tmp_path / "run.json").write_text("{not json")
    assert cli.main(["compare", two_runs[0], str(tmp_path)]) == 2
    assert f"{tmp_path}/run.json: not valid JSON" in capsys.readouterr().err


def test_compare_prints_a_loss_in_dollars_with_separators_not_an_exponent():
    from pipelines.compare import render
    row = {"section": "metrics", "step": "xgboost", "field": "eval_loss", "a": 1720924.4,
           "b": 1698311.9, "changed": True}
    old = {"section": "metrics", "step": "xgboost", "field": "objective_loss", "a": None,
           "b": 0.568812, "changed": True}  # A was recorded before objective_loss existed
    run = {"run_dir": "r", "pipeline": "p", "started": "t", "status": "succeeded"}
    text = render({"a": run, "b": run, "rows": [row, old], "changed": []})
    assert "  xgboost  eval_loss       1,720,924  1,698,312  changed -22,612.5 (-1.3%)" in text
    assert "  xgboost  objective_loss  -          0.568812   changed" in text
