"""The ``cooccurrence_evaluation`` artifact: word-similarity and analogy scores of a
co-occurrence artifact's vectors next to gensim Word2Vec on the same corpus.

Written by ``python -m beam_jobs.cooccurrence.evaluate --vectors V --output E`` into its
own directory: the evaluated ``cooccurrence`` artifact stays exactly as committed (its
digest and ``verify`` stay valid), and the evaluation names it by URI and digest::

    evaluation.json   {"vectors", "digest", "corpus", "sentences", "tokens", "window",
                       "min_count", "analogy_questions", "word2vec_train_s",
                       "models": {name: {"vocab", "wordsim353": {"spearman", "oov_pct"},
                                         "simlex999": {...}, "analogies": {"accuracy",
                                         "answered", "oov_pct"}}}}
    evaluation.md     the same scores as a Markdown table
    artifact.json     inputs: the cooccurrence artifact (role "vectors") and the corpus
                      files (role "corpus"); the section: {"results", "table", "models"}
"""
from __future__ import annotations

import dataclasses
import os

from mlbatch.artifacts.base import read_json
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest

TYPE = "cooccurrence_evaluation"
RESULTS = "evaluation.json"
TABLE = "evaluation.md"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    root: str
    manifest: Manifest
    results: dict  # evaluation.json

    @property
    def vectors(self) -> dict:
        """The evaluated artifact's input entry (uri, digest)."""
        return self.manifest.input("vectors")

    @property
    def models(self) -> dict[str, dict]:
        return self.results["models"]


def load_evaluation(root: str | os.PathLike) -> Evaluation:
    """Reads a committed ``cooccurrence_evaluation`` artifact (local path or ``gs://``)."""
    m = read_manifest(root, TYPE)
    results = read_json(m.path(m.body.get("results", RESULTS)))
    if results.get("digest") != m.input("vectors")["digest"]:
        raise ArtifactError(f"{m.root}: {RESULTS} scores {results.get('digest')}, but the "
                            f"artifact records vectors {m.input('vectors')['digest']}")
    return Evaluation(root=m.root, manifest=m, results=results)
