"""The ``model_evaluation`` artifact: a candidate model checked against the blessed one.

Written by ``python -m pipelines.model_registry.bless`` (docs/registry.md)::

    evaluation.json   name, decision ("blessed" | "refused"), registry (the store's path,
                      relative to this directory when both are local: a moved run keeps
                      its registry; ``registry_path`` resolves it),
                      candidate and baseline {version, uri, digest} (baseline null for the
                      first model of a name), eval_rows, slice_column, metrics
                      {candidate: {overall, slices}, baseline: ...}, checks [{metric,
                      kind: value|change, op, threshold, relative, slice, candidate,
                      baseline, change, passed}], failed (the checks that did not pass),
                      skipped_slices [{slice, rows, reason}]
    artifact.json     inputs: the candidate (role "model"), the baseline (role
                      "baseline"), the features (role "features"); the section repeats
                      name, decision, registry, candidate and baseline versions

``load_model_evaluation`` is the one reader; the decision and every number are in
``evaluation.json``, so they are part of the artifact's digest.
"""
from __future__ import annotations

import dataclasses
import os

from mlbatch.artifacts.base import read_json
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest

TYPE = "model_evaluation"
RESULTS = "evaluation.json"
DECISIONS = ("blessed", "refused")


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    root: str
    manifest: Manifest
    results: dict  # evaluation.json

    @property
    def decision(self) -> str:
        return self.results["decision"]

    @property
    def blessed(self) -> bool:
        return self.decision == "blessed"

    @property
    def failed(self) -> list[dict]:
        return self.results["failed"]

    @property
    def checks(self) -> list[dict]:
        return self.results["checks"]


def registry_ref(store: str, root: str) -> str:
    """What evaluation.json records as the registry: ``store`` relative to the artifact
    directory ``root`` when both are local paths (so a moved run directory finds its
    store), else ``store`` as it is."""
    if "://" in store or "://" in root:
        return store
    return os.path.relpath(os.path.abspath(store), os.path.abspath(root))


def registry_path(root: str, recorded: str) -> str:
    """The registry store a ``model_evaluation`` in ``root`` recorded: a relative path
    resolved against ``root`` (an absolute one, as older artifacts wrote, as it is)."""
    if "://" in recorded or os.path.isabs(recorded) or "://" in root:
        return recorded
    return os.path.normpath(os.path.join(os.path.abspath(root), recorded))


def evaluation_section(results: dict) -> dict:
    """The manifest section: where the results are and what was decided."""
    return {"results": RESULTS, "name": results["name"], "decision": results["decision"],
            "registry": results["registry"], "candidate": results["candidate"],
            "baseline": results["baseline"]}


def load_model_evaluation(root: str | os.PathLike) -> ModelEvaluation:
    """Reads a committed ``model_evaluation`` artifact; raises ArtifactError naming why."""
    m = read_manifest(root, TYPE)
    try:
        results = read_json(m.path(m.body.get("results", RESULTS)))
        for key in ("name", "decision", "candidate", "checks", "failed"):
            if key not in results:
                raise KeyError(key)
    except (OSError, ValueError, KeyError) as e:
        raise ArtifactError(f"{m.root}: unreadable {RESULTS} ({e!r})") from e
    if results["decision"] not in DECISIONS or results["decision"] != m.body.get("decision"):
        raise ArtifactError(f"{m.root}: decision {results['decision']!r} in {RESULTS} does "
                            f"not match the manifest's {m.body.get('decision')!r}")
    if results["candidate"]["digest"] != m.input("model")["digest"]:
        raise ArtifactError(f"{m.root}: {RESULTS} evaluates {results['candidate']['digest']}, "
                            f"but the artifact records model {m.input('model')['digest']}")
    return ModelEvaluation(root=m.root, manifest=m, results=results)
