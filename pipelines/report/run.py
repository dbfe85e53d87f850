"""A pipeline run directory as the report sees it: ``run.json`` and each step's artifact.

``RUN/run.json`` (``pipelines.run_file``: written by the runner, read here) lists the
steps; each step's ``output`` (relative to RUN) is an artifact directory, read here only
through ``mlbatch.artifacts.read_manifest`` (its type's own reader is used per section).
Without ``run.json`` every sub-directory holding an artifact is taken as a step, so a
report can be rendered for any directory of artifacts.
"""
from __future__ import annotations

import dataclasses
import logging

from mlbatch import storage
from mlbatch.artifacts import ArtifactError, Manifest, read_manifest
from pipelines.run_file import RUN_FILE, RunFileError, read_run

LOGGER = logging.getLogger(__name__)
REPORT_TYPE = "run_report"


class RunError(ArtifactError):
    """The directory is not a readable pipeline run (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    info: dict  # the step's run.json entry (synthesised without run.json)
    uri: str  # its artifact directory
    manifest: Manifest | None  # None: not committed (failed, skipped or missing)
    problem: str | None  # why there is no manifest

    @property
    def type(self) -> str | None:
        return self.manifest.type if self.manifest else None

    @property
    def status(self) -> str:
        return self.info.get("status") or ("done" if self.manifest else "failed")


@dataclasses.dataclass(frozen=True)
class Run:
    root: str
    doc: dict  # run.json ({} without one)
    steps: tuple[Step, ...]

    def of_type(self, type_: str) -> list[Step]:
        return [s for s in self.steps if s.type == type_]

    def by_digest(self) -> dict[str, Step]:
        return {s.manifest.digest: s for s in self.steps if s.manifest}

    def by_uri(self) -> dict[str, Step]:
        return {s.manifest.root: s for s in self.steps if s.manifest}

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == "failed"]


def _step(root: str, info: dict) -> Step:
    name = info.get("name") or info.get("output") or "?"
    uri = storage.join(root, info.get("output") or name)
    try:
        manifest, problem = read_manifest(uri), None
    except ArtifactError as e:
        manifest, problem = None, str(e)
    if manifest is not None and manifest.type == REPORT_TYPE:
        return Step(name, info, uri, None, "a run report")
    return Step(name, info, uri, manifest, problem)


def _discover(root: str) -> list[dict]:
    """Steps of a directory without run.json: its sub-directories holding an artifact."""
    dirs = sorted({f.relpath.split("/", 1)[0] for f in storage.list_files(root)
                   if f.relpath.count("/") == 1 and f.relpath.endswith(
                       ("/artifact.json", "/_PENDING.json"))})
    return [{"name": d, "output": d} for d in dirs]


def load_run(root: str) -> Run:
    """Reads RUN/run.json and every step's manifest; refuses a missing directory."""
    root = storage.locate(root).uri
    if not storage.is_dir(root):
        raise RunError(f"run directory {root} does not exist")
    try:
        doc = read_run(root)
    except RunFileError as e:
        raise RunError(str(e)) from e
    if doc is not None:
        infos = doc["steps"]
    else:
        LOGGER.warning("%s has no %s: taking its artifact sub-directories as steps",
                       root, RUN_FILE)
        doc, infos = {}, _discover(root)
    steps = [_step(root, info) for info in infos]
    steps = [s for s in steps if s.problem != "a run report"]
    if not steps:
        raise RunError(f"{root} holds no steps (no {RUN_FILE} and no artifact directories)")
    return Run(root=root, doc=doc, steps=tuple(steps))
