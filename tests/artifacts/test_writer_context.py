"""ArtifactWriter as a context manager: the one "fail on exception" of every job."""
from __future__ import annotations

import pytest

from mlbatch.artifacts import ArtifactWriter, read_manifest
from mlbatch.artifacts.base import LeftUncommittedError
from mlbatch.artifacts.manifest import MANIFEST, PENDING, UncommittedError, pending_state
from mlbatch.errors import JobError


def _claimed(tmp_path) -> ArtifactWriter:
    writer = ArtifactWriter(tmp_path / "out", "monitor", job="tests.writer")
    writer.claim()
    return writer


def test_an_exception_in_the_block_marks_the_output_failed_and_propagates(tmp_path):
    writer = _claimed(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with writer:
            (tmp_path / "out" / "part.txt").write_text("half")
            raise ZeroDivisionError("division by zero")
    assert pending_state(writer.root)["failure"] == "ZeroDivisionError: division by zero"
    assert not (tmp_path / "out" / MANIFEST).exists()
    with pytest.raises(UncommittedError):
        read_manifest(writer.root)
    with ArtifactWriter(tmp_path / "out", "monitor", job="tests.writer") as again:
        again.claim(overwrite=True)  # the failed run released its lock
        again.commit(body={"n": 1})
    assert read_manifest(again.root).doc["monitor"] == {"n": 1}


def test_a_committed_block_leaves_the_committed_artifact_alone(tmp_path):
    writer = _claimed(tmp_path)
    with writer:
        (tmp_path / "out" / "part.txt").write_text("whole")
        manifest = writer.commit(body={"n": 2})
    assert read_manifest(writer.root).digest == manifest.digest
    assert not (tmp_path / "out" / PENDING).exists()


def test_a_block_that_neither_commits_nor_fails_is_a_job_error(tmp_path):
    writer = _claimed(tmp_path)
    with pytest.raises(LeftUncommittedError) as e:
        with writer:
            (tmp_path / "out" / "part.txt").write_text("forgotten")
    assert isinstance(e.value, JobError)
    assert str(e.value).endswith("the job ended without committing or failing its output")
    assert pending_state(writer.root)["failure"] == (
        "the job ended without committing or failing its output")


def test_a_failed_output_keeps_its_own_reason(tmp_path):
    writer = _claimed(tmp_path)
    with writer:
        writer.fail("counts do not reconcile")
    assert pending_state(writer.root)["failure"] == "counts do not reconcile"


def test_an_unclaimed_writer_a_dry_run_writes_nothing(tmp_path):
    with pytest.raises(KeyError):
        with ArtifactWriter(tmp_path / "out", "monitor", job="tests.writer"):
            raise KeyError("dry")
    with ArtifactWriter(tmp_path / "out", "monitor", job="tests.writer"):
        pass
    assert not (tmp_path / "out").exists()
