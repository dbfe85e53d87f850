"""Steps declared over periods (issue #21 points 2 and 3): one instance per period with
its own output, cache key and run.json entry; a backfill runs only the missing instances,
a new period reruns nothing that exists, a changed period's file reruns only the
instances that read it. The runner-level cases use the tiny ``tests.pipeline.toy_job``."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pipelines import periods
from pipelines.progress import Progress
from pipelines.runner import RunOptions, Runner, selected_steps
from pipelines.spec import SpecError, parse_pipeline
from tests.pipeline import toy_job

# base -> score[P] (reads raw/period=P/rows.txt) -> drift[P] (reads score[P] and the
# previous period's score: declared from the second period on)
SPEC = """
pipeline: backfill
steps:
  base: {{job: toy, args: {{text: base}}}}
  score:
    job: toy
    periods: {periods}
    args: {{text: "score ${{period}}", inputs: ["${{base}}"], period: "${{period}}",
           read: "{raw}/period=${{period}}/rows.txt"}}
    raw: [read]
  drift:
    job: toy
    periods: {drift}
    args: {{text: "drift ${{period}} vs ${{prev_period}}", period: "${{period}}",
           inputs: ["${{score[${{period}}]}}", "${{score[${{prev_period}}]}}"]}}
"""


def _spec(raw: Path, first: str, last: str) -> str:
    second = periods.expand(f"{first}..{last}")[1]
    return SPEC.format(raw=raw, periods=f"{first}..{last}", drift=f"{second}..{last}")


@pytest.fixture
def toy(monkeypatch):
    toy_job.register(monkeypatch)


def test_instances_have_their_period_their_output_and_the_previous_periods_input(toy):
    p = parse_pipeline(_spec(Path("/raw"), "2013-10", "2013-12"))
    assert list(p.steps) == ["base", "score[2013-10]", "score[2013-11]", "score[2013-12]",
                             "drift[2013-11]", "drift[2013-12]"]
    drift = p.steps["drift[2013-12]"]
    assert (drift.period, drift.family, drift.out) == ("2013-12", "drift", "drift@2013-12")
    assert drift.upstream == ["score[2013-11]", "score[2013-12]"]
    assert drift.argv("/R") == ["--text", "drift 2013-12 vs 2013-11", "--period", "2013-12",
                                "--inputs", "/R/score@2013-12", "--inputs", "/R/score@2013-11",
                                "--output", "/R/drift@2013-12"]
    assert p.steps["score[2013-10]"].argv("/R")[-3:] == [
        "/raw/period=2013-10/rows.txt", "--output", "/R/score@2013-10"]
    assert selected_steps(p, RunOptions(only=("score",))) == {
        "score[2013-10]", "score[2013-11]", "score[2013-12]"}
    assert selected_steps(p, RunOptions(start="score[2013-11]")) == {
        "score[2013-11]", "drift[2013-11]", "drift[2013-12]"}


def test_period_ranges_lists_and_their_calendar():
    assert periods.expand("2012-11..2013-02") == ["2012-11", "2012-12", "2013-01", "2013-02"]
    assert periods.expand("2016-02-28..2016-03-01") == ["2016-02-28", "2016-02-29", "2016-03-01"]
    assert periods.previous("2013-01") == "2012-12"
    assert periods.previous("2013-03-01") == "2013-02-28"
    assert periods.expand(["2013-12", "2013-10"]) == ["2013-12", "2013-10"]


@pytest.mark.parametrize("field, message", [
    ('periods: 2013-10..2013-13', "step 'score': field 'periods': period '2013-13': month 13 "
                                  "is not 1..12"),
    ('periods: 2013-12..2013-10', "step 'score': field 'periods': range '2013-12..2013-10': "
                                  "2013-10 comes before 2013-12"),
    ('periods: 2013-10..2013-10-05', "step 'score': field 'periods': range "
                                     "'2013-10..2013-10-05': 2013-10 and 2013-10-05 are not "
                                     "of one granularity"),
    ('periods: ["2013-10", "2013-10"]', "step 'score': field 'periods': period 2013-10 is "
                                        "listed twice"),
    ('periods: 201310', "step 'score': field 'periods': period 201310 is not a string like "
                        "2013-10 (quote it)"),
])
def test_bad_periods_are_refused_naming_the_step_and_field(toy, field, message):
    text = f"""
pipeline: p
steps:
  score: {{job: toy, {field}, args: {{text: x}}}}
"""
    with pytest.raises(SpecError) as err:
        parse_pipeline(text)
    assert str(err.value) == message


@pytest.mark.parametrize("steps, message", [
    ('a: {job: toy, args: {text: "${period}"}}',
     "step 'a': field 'args.text': ${period} needs a 'periods' field on the step"),
    ('a: {job: toy, periods: 2013-10..2013-11, args: {text: x}}\n'
     '  b: {job: toy, args: {text: y, inputs: ["${a}"]}}',
     "step 'b': field 'args.inputs': step 'a' is declared per period: name an instance, "
     'e.g. "${a[${period}]}" or "${a[2013-10]}"'),
    ('a: {job: toy, periods: 2013-10..2013-11, args: {text: x, '
     'inputs: ["${a[${prev_period}]}"]}}',
     "step 'a[2013-10]': field 'args.inputs': reference to unknown step 'a[2013-09]'"),
])
def test_period_references_that_cannot_resolve_are_refused(toy, steps, message):
    with pytest.raises(SpecError) as err:
        parse_pipeline(f"pipeline: p\nsteps:\n  {steps}\n")
    assert str(err.value) == message


def _run(run_dir: Path, spec: str) -> dict[str, str]:
    runner = Runner(parse_pipeline(spec), str(run_dir), RunOptions(max_parallel=2))
    runner.progress = Progress(runner.states, stream=io.StringIO(), live=False)
    assert runner.run()
    doc = json.loads((run_dir / "run.json").read_text())
    return {s["name"]: s["status"] for s in doc["steps"]}


@pytest.fixture(scope="module")
def backfill(tmp_path_factory) -> dict:
    """Phases: a cold run over Oct-Nov; Dec arrives; Nov's file changes; nothing changes."""
    root = tmp_path_factory.mktemp("periods")
    raw, run_dir = root / "raw", root / "run"
    for month in ("2013-10", "2013-11", "2013-12"):
        (raw / f"period={month}").mkdir(parents=True)
        (raw / f"period={month}" / "rows.txt").write_text(f"rows of {month}\n")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        toy_job.register(mp)
        out["cold"] = _run(run_dir, _spec(raw, "2013-10", "2013-11"))
        out["new_period"] = _run(run_dir, _spec(raw, "2013-10", "2013-12"))
        (raw / "period=2013-11" / "rows.txt").write_text("rows of 2013-11, corrected\n")
        out["changed"] = _run(run_dir, _spec(raw, "2013-10", "2013-12"))
        out["unchanged"] = _run(run_dir, _spec(raw, "2013-10", "2013-12"))
    out["run"] = json.loads((run_dir / "run.json").read_text())
    out["drift_dec"] = (run_dir / "drift@2013-12" / "out.txt").read_text()
    out["score_nov_config"] = json.loads(
        (run_dir / "score@2013-11" / "artifact.json").read_text())["config"]
    return out


def test_a_cold_run_runs_every_instance(backfill):
    assert backfill["cold"] == {"base": "done", "score[2013-10]": "done",
                                "score[2013-11]": "done", "drift[2013-11]": "done"}


def test_a_new_period_runs_its_instances_only(backfill):
    assert backfill["new_period"] == {"base": "cached", "score[2013-10]": "cached",
                                      "score[2013-11]": "cached", "score[2013-12]": "done",
                                      "drift[2013-11]": "cached", "drift[2013-12]": "done"}


def test_a_changed_period_reruns_its_instances_and_those_that_read_them(backfill):
    """November's file changed: score[2013-11], and the two drift instances that read it
    (November's own, and December's against the previous period); nothing else."""
    assert backfill["changed"] == {"base": "cached", "score[2013-10]": "cached",
                                   "score[2013-11]": "done", "score[2013-12]": "cached",
                                   "drift[2013-11]": "done", "drift[2013-12]": "done"}
    assert set(backfill["unchanged"].values()) == {"cached"}


def test_instances_are_recorded_with_their_own_output_and_inputs(backfill):
    steps = {s["name"]: s for s in backfill["run"]["steps"]}
    assert steps["drift[2013-12]"]["output"] == "drift@2013-12"
    assert (steps["drift[2013-12]"]["period"], steps["base"]["period"]) == ("2013-12", None)
    assert steps["drift[2013-12]"]["inputs"] == ["score[2013-11]", "score[2013-12]"]
    assert backfill["drift_dec"] == ("base\nrows of 2013-12\nscore 2013-12\n"
                                     "base\nrows of 2013-11, corrected\nscore 2013-11\n"
                                     "drift 2013-12 vs 2013-11\n")
    assert backfill["score_nov_config"]["period"] == "2013-11"


def test_a_range_reader_keys_only_its_own_period_folders(tmp_path):
    """The feature step reads periods 2013-01..2013-02 of a Hive-partitioned folder: a new
    or changed month outside the range leaves its raw key alone; a changed month inside it
    or a changed lookup file beside the folders changes it."""
    from pipelines.cache import raw_digest
    root = tmp_path / "months"
    for month, text in (("2013-01", "a\n1\n"), ("2013-02", "a\n2\n"), ("2013-03", "a\n3\n")):
        (root / f"period={month}").mkdir(parents=True)
        (root / f"period={month}" / "flights.csv").write_text(text)
    (root / "planes.csv").write_text("p\n1\n")
    before = raw_digest(str(root), "2013-01..2013-02")
    assert [name for name, _ in before] == [
        "0:period=2013-01/flights.csv", "0:period=2013-02/flights.csv", "0:planes.csv"]
    (root / "period=2013-03" / "flights.csv").write_text("a\n33\n")
    (root / "period=2013-04").mkdir()
    (root / "period=2013-04" / "flights.csv").write_text("a\n4\n")
    assert raw_digest(str(root), "2013-01..2013-02") == before
    assert len(raw_digest(str(root))) == 5  # without periods: every file counts
    (root / "period=2013-02" / "flights.csv").write_text("a\n22\n")
    changed = raw_digest(str(root), "2013-01..2013-02")
    assert changed != before
    (root / "planes.csv").write_text("p\n2\n")
    assert raw_digest(str(root), "2013-01..2013-02") != changed
