"""Independent branches side by side (issue #21 point 6), on a pipeline of tiny jobs
(``tests.pipeline.toy_job``, registered for these tests only): a parallel run commits the
same artifacts as a sequential one, a failing branch stops only its own downstream steps,
``max_parallel=1`` runs one step at a time, and Ray steps take turns on the Ray slots."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pipelines import __main__ as cli
from pipelines.progress import Progress
from pipelines.runner import RunOptions, Runner
from pipelines.spec import parse_pipeline
from tests.pipeline import toy_job

REPO = Path(__file__).resolve().parents[2]

# src -> left, right (meet each other), bad (fails) -> after_bad; left+right -> join;
# src -> r1, r2 (Ray jobs, run locally: they take turns on one Ray slot)
SPEC = """
pipeline: toy
steps:
  src: {job: toy, args: {text: source}}
  left: {job: toy, args: {text: left, inputs: ["${src}"]}}
  right: {job: toy, args: {text: right, inputs: ["${src}"]}}
  bad: {job: toy, args: {text: bad, inputs: ["${src}"], fail: true}}
  after_bad: {job: toy, args: {text: after, inputs: ["${bad}"]}}
  join: {job: toy, args: {text: join, inputs: ["${left}", "${right}"]}}
  r1: {job: toy_ray, args: {text: r1, inputs: ["${src}"]}}
  r2: {job: toy_ray, args: {text: r2, inputs: ["${src}"]}}
"""
COMMITTED = ["src", "left", "right", "join", "r1", "r2"]


def _run(root: Path, name: str, mp: pytest.MonkeyPatch, **options) -> dict:
    """Runs the toy pipeline into ROOT/NAME; returns its run.json, progress lines,
    journal lines and per-step artifact digests and file hashes."""
    spec = root / "toy.yaml"
    spec.write_text(SPEC)
    journal = root / f"{name}.journal"
    mp.setenv("TOY_JOURNAL", str(journal))
    stream = io.StringIO()
    runner = Runner(parse_pipeline(SPEC, path=str(spec)), str(root / name),
                    RunOptions(**options))
    runner.progress = Progress(runner.states, stream=stream, live=False)
    ok = runner.run()
    run_dir = root / name
    manifests = {n: json.loads((run_dir / n / "artifact.json").read_text()) for n in COMMITTED}
    return {"ok": ok, "order": runner.pipeline.order(), "run": json.loads((run_dir / "run.json").read_text()),
            "progress": stream.getvalue().splitlines(),
            "journal": journal.read_text().splitlines(),
            "digests": {n: m["digest"] for n, m in manifests.items()},
            "files": {n: {f["path"]: f["sha256"] for f in m["outputs"]["files"]}
                      for n, m in manifests.items()},
            "out": {n: (run_dir / n / "out.txt").read_text() for n in COMMITTED}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("parallel")
    with pytest.MonkeyPatch.context() as mp:
        toy_job.register(mp)
        meet = root / "meet"
        meet.mkdir()
        mp.setenv("TOY_MEET", f"{meet}:left,right")
        parallel = _run(root, "parallel", mp, max_parallel=4, ray_slots=1)
        mp.delenv("TOY_MEET")
        sequential = _run(root, "sequential", mp, max_parallel=1)
    return {"parallel": parallel, "sequential": sequential}


def _status(result: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in result["run"]["steps"]}


EXPECTED_STATUS = {"src": "done", "left": "done", "right": "done", "bad": "failed",
                   "after_bad": "skipped", "join": "done", "r1": "done", "r2": "done"}


def test_parallel_run_commits_the_same_artifacts_as_a_sequential_one(runs):
    par, seq = runs["parallel"], runs["sequential"]
    assert par["digests"] == seq["digests"]
    assert par["files"] == seq["files"]
    assert par["out"]["join"] == "source\nleft\nsource\nright\njoin\n"
    keys = [{s["name"]: s["cache_key"] for s in r["run"]["steps"]} for r in (par, seq)]
    assert keys[0] == keys[1] and keys[0]["join"].startswith("sha256:")


def test_left_and_right_ran_side_by_side(runs):
    """left and right wait for each other's start: both done proves they overlapped."""
    journal = runs["parallel"]["journal"]
    assert _status(runs["parallel"])["left"] == "done" == _status(runs["parallel"])["right"]
    first_end = min(journal.index("end left"), journal.index("end right"))
    assert journal.index("start left") < first_end and journal.index("start right") < first_end


def test_a_failing_branch_stops_only_its_own_downstream_steps(runs):
    for result in runs.values():
        assert result["ok"] is False
        assert _status(result) == EXPECTED_STATUS
        steps = {s["name"]: s for s in result["run"]["steps"]}
        assert steps["bad"]["error"] == ("exit 1: ToyError: bad fails as told (no committed output); "
                                         "log: _logs/bad.log")
        assert steps["after_bad"]["error"] == "upstream bad failed"
        assert result["run"]["status"] == "failed" and result["run"]["ended"] is not None
        assert "start after_bad" not in result["journal"]


def test_max_parallel_one_runs_one_step_at_a_time_in_topological_order(runs):
    """One job at a time, in Pipeline.order() (the order the sequential runner used)."""
    journal = runs["sequential"]["journal"]
    order = [n for n in runs["sequential"]["order"] if n != "after_bad"]
    assert order == ["src", "left", "right", "bad", "r1", "r2", "join"]
    expected = []
    for name in order:
        expected += [f"start {name}"] + ([f"end {name}"] if name != "bad" else [])
    assert journal == expected


def test_ray_steps_take_turns_on_one_ray_slot(runs):
    journal = runs["parallel"]["journal"]
    r1, r2 = (journal.index(f"start {n}") for n in ("r1", "r2"))
    first, second = ("r1", "r2") if r1 < r2 else ("r2", "r1")
    assert journal.index(f"end {first}") < journal.index(f"start {second}")


def test_progress_lines_name_each_step_while_several_run(runs):
    lines = runs["parallel"]["progress"]
    assert lines[0].endswith("(up to 4 steps at a time, 1 on Ray)")
    running = [ln.split()[0] for ln in lines if ln.split()[1:2] == ["running"]]
    assert sorted(running) == sorted(["src", "left", "right", "bad", "join", "r1", "r2"])
    src = next(ln for ln in lines if ln.startswith("src ") and " running" in ln)
    assert src.split() == ["src", "running", "0s", "no", "committed", "output"]  # why it runs
    left_done = next(i for i, ln in enumerate(lines) if ln.startswith("left ") and " done " in ln)
    right_running = next(i for i, ln in enumerate(lines)
                         if ln.startswith("right ") and " running" in ln)
    assert right_running < left_done  # both shown running before either is done


@pytest.mark.parametrize("flag", ["--max-parallel", "--ray-slots"])
def test_slot_flags_below_one_are_refused_before_anything_runs(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(REPO / "pipelines" / "flights.yaml"), "--output",
                  str(tmp_path / "run"), flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a whole number >= 1, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=f"{flag} must be a whole number >= 1, got 0"):
        RunOptions(**{flag[2:].replace("-", "_"): 0})
