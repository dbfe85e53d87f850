"""The registry reads each job's flags from its own parser; nothing is re-typed."""
from __future__ import annotations

import argparse

import pytest

from pipelines.registry import JOBS, RUNNER_FLAGS, parser_flags
from pipelines.spec import SpecError, _check_args


def test_flags_are_the_jobs_own_parser_less_the_runners():
    from beam_jobs.cooccurrence.config import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    live = {o[2:].replace("-", "_") for a in parser._actions for o in a.option_strings
            if o.startswith("--") and o != "--help"}
    assert JOBS["beam_jobs.cooccurrence"].flags == live - RUNNER_FLAGS
    # once re-typed by hand and missed: --processes (co-occurrence), --passes (features)
    assert "processes" in JOBS["beam_jobs.cooccurrence"].flags
    assert "passes" in JOBS["beam_jobs.features"].flags
    assert JOBS["pipelines.report"].flags == {"run", "previous"}  # main added --previous
    assert all(not (info.flags & RUNNER_FLAGS) for info in JOBS.values())


def test_a_step_naming_a_flag_its_job_lacks_or_the_runners_is_refused():
    assert _check_args("t", "beam_jobs.cooccurrence", {"processes": 2}) == {"processes": 2}
    for key in ("output", "no_such_flag"):
        with pytest.raises(SpecError, match=rf"field 'args.{key}': beam_jobs.cooccurrence has "
                                            rf"no flag --{key.replace('_', '-')} \(known: "):
            _check_args("t", "beam_jobs.cooccurrence", {key: "x"})


def test_parser_flags_reads_add_argument_and_its_alias(tmp_path):
    src = tmp_path / "job.py"
    src.write_text('p.add_argument("--max-rows", type=int)\nadd = p.add_argument\n'
                   'add("--output")\nadd("run")\np.add_argument(name_in_a_variable)\n')
    assert parser_flags(str(src)) == {"max_rows", "run"}
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="no --flags declared in"):
        parser_flags(str(tmp_path / "none.py"))
