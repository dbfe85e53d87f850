"""The Text section: the co-occurrence summary and the embedding evaluation."""
from __future__ import annotations

import logging

import numpy as np

from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.cooccurrence import CooccurrenceArtifact, load_cooccurrence
from mlbatch.artifacts.cooccurrence_evaluation import load_evaluation
from pipelines.report import figures
from pipelines.report.blocks import Figure, Section, Text, absent, fmt, table
from pipelines.report.run import Run, Step

LOGGER = logging.getLogger(__name__)
TOP_TOKENS = 20
SUMMARY_FIELDS = ("files", "lines", "tokens", "kept_tokens", "dropped_tokens", "vocab_size",
                  "nnz", "dead_letter_records")


def summary_rows(art: CooccurrenceArtifact) -> list[list]:
    s = art.summary()
    body = art.body
    rows = [[k.replace("_", " "), s.get(k)] for k in SUMMARY_FIELDS if k in s]
    rows += [["window", body.get("window")], ["min count", body.get("min_count")],
             ["weighting", body.get("weighting")], ["PPMI non-zeros",
                                                    body.get("nnz", {}).get("ppmi")],
             ["vector dimensions", body.get("vector_dim")]]
    return rows


def evaluation_rows(evaluation: dict) -> list[list]:
    rows = []
    for name, r in evaluation["models"].items():
        rows.append([name, r["vocab"], r["wordsim353"]["spearman"], r["wordsim353"]["oov_pct"],
                     r["simlex999"]["spearman"], r["simlex999"]["oov_pct"],
                     r["analogies"]["accuracy"], r["analogies"].get("answered"),
                     r["analogies"]["oov_pct"]])
    return rows


def evaluation_of(run: Run, art: CooccurrenceArtifact) -> dict | None:
    """evaluation.json of the run's cooccurrence_evaluation step that evaluated ``art``
    (matched by the vectors' digest); None when the run has none."""
    for step in run.of_type("cooccurrence_evaluation"):
        try:
            ev = load_evaluation(step.manifest.root)
        except ArtifactError as e:
            LOGGER.warning("evaluation %s unreadable: %s", step.name, e)
            continue
        if ev.vectors.get("digest") == art.manifest.digest:
            return ev.results
    return None


def _text_blocks(step: Step, art: CooccurrenceArtifact, evaluation: dict | None) -> list:
    blocks = [table(["quantity", "value"], summary_rows(art),
                    f"Co-occurrence summary of {step.name}")]
    vocab = art.vocabulary()
    top = np.argsort(-vocab.counts, kind="stable")[:TOP_TOKENS]
    blocks.append(Figure(f"{step.name}-tokens", figures.barh(
        [vocab.tokens[i] for i in top], [int(vocab.counts[i]) for i in top],
        title=f"{step.name}: most frequent tokens", xlabel="count"), "most frequent tokens",
        f"{step.name}: the {len(top)} most frequent tokens of the vocabulary"))
    if evaluation is None:
        blocks.append(Text("Embedding evaluation: not in this run (no cooccurrence_evaluation "
                           "step: python -m beam_jobs.cooccurrence.evaluate).", "note"))
        return blocks
    blocks.append(table(["model", "vocab", "WordSim353 ρ", "WordSim353 OOV %", "SimLex-999 ρ",
                         "SimLex-999 OOV %", "analogy accuracy", "analogies answered",
                         "analogies OOV %"], evaluation_rows(evaluation),
                        f"Embedding evaluation: this project's PPMI/SVD vectors vs gensim "
                        f"Word2Vec on the same corpus ({fmt(evaluation.get('sentences'))} "
                        f"sentences, {fmt(evaluation.get('analogy_questions'))} analogy questions)"))
    return blocks


def text_section(run: Run) -> Section:
    steps = run.of_type("cooccurrence")
    if not steps:
        return absent("text", "Text", "no co-occurrence step")
    blocks = []
    for step in steps:
        try:
            art = load_cooccurrence(step.uri)
            blocks += _text_blocks(step, art, evaluation_of(run, art))
        except ArtifactError as e:
            LOGGER.warning("cooccurrence step %s: %s", step.name, e)
            blocks.append(Text(f"{step.name}: {e}", "alert"))
    shown = steps + run.of_type("cooccurrence_evaluation")
    return Section("text", "Text", tuple(blocks), shown=tuple(s.name for s in shown))
