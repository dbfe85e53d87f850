"""The one job skeleton's error path (mlbatch.errors) and logging setup (mlbatch.logs)."""
from __future__ import annotations

import ast

import pytest

from mlbatch import errors
from mlbatch.artifacts import OutputExistsError
from mlbatch.config import ConfigError
from mlbatch.schema import SchemaError
from mlbatch.storage import StorageError
from tests.test_import_graph import ROOT, project_modules

# Raised and caught inside one job, never out of its main: not a job failure.
INTERNAL = {"ValueProblem": "a per-value reason that becomes a dead letter",
            "Cancelled": "pipelines.remote_task's own cancellation signal"}


def _exception_classes() -> dict[str, list[str]]:
    """Every class of the project packages whose bases look like exceptions: name -> base
    names (the last dotted part), across all modules (a name defined twice is checked
    with the union of its bases)."""
    found: dict[str, list[str]] = {}
    for path in project_modules().values():
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ClassDef):
                bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                         for b in n.bases]
                if any(b.endswith(("Error", "Exception", "Problem")) or b == "Cancelled"
                       for b in bases):
                    found.setdefault(n.name, []).extend(bases)
    return found


def test_every_exception_class_is_a_usage_or_a_job_error():
    classes = _exception_classes()

    def rooted(name: str, seen=()) -> bool:
        if name in ("UsageError", "JobError"):
            return True
        return name in classes and name not in seen and any(
            rooted(b, (*seen, name)) for b in classes[name])

    assert len(classes) > 40
    assert sorted(n for n in classes if not rooted(n) and n not in INTERNAL
                  and n not in ("UsageError", "JobError")) == []


@pytest.mark.parametrize("error, code", [
    (SchemaError("schemas/x.yaml: label: missing"), 2), (ConfigError("window: must be >= 1"), 2),
    (StorageError("no answer from Cloud Storage"), 2), (OutputExistsError("out: committed"), 2),
    (FileNotFoundError("data/x.csv"), 2), (errors.JobError("counts do not reconcile"), 1),
])
def test_exit_codes_are_mapped_in_one_place(capsys, error, code):
    assert errors.exit_code("python -m some.job", error) == code
    assert capsys.readouterr().err == f"python -m some.job: error: {error}\n"
    assert errors.exit_code(None, error) == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_the_feature_jobs_unusable_input_is_a_usage_error_and_other_errors_are_raised():
    from beam_jobs.features.__main__ import FeatureJobError, UnusableInputError
    assert errors.exit_code(None, UnusableInputError("no eval rows")) == 2
    assert errors.exit_code(None, FeatureJobError("dead letters over the limit")) == 1
    with pytest.raises(KeyError):
        errors.exit_code(None, KeyError("a bug is not a usage error"))


def test_logging_is_set_up_in_one_place():
    calls = sorted(str(p.relative_to(ROOT)) for p in
                   [*project_modules().values(), *sorted((ROOT / "scripts").rglob("*.py"))]
                   for n in ast.walk(ast.parse(p.read_text()))
                   if isinstance(n, ast.Attribute) and n.attr == "basicConfig")
    assert calls == ["mlbatch/logs.py"]
