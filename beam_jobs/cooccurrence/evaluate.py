"""Scores the job's PPMI rows and SVD vectors next to gensim Word2Vec, with gensim's evaluators.

python -m beam_jobs.cooccurrence.evaluate --vectors out/cooccurrence \
    --output out/cooccurrence_evaluation [--corpus 'data/sotu/*.txt'] [--epochs 5]

``--vectors`` is a committed co-occurrence artifact (the job's --output, local or gs://),
read through ``mlbatch.artifacts.cooccurrence`` and never written to; ``--output`` is the
evaluation's own ``cooccurrence_evaluation`` artifact (``evaluation.json``,
``evaluation.md``; ``mlbatch.artifacts.cooccurrence_evaluation``), which names the vectors
by URI and digest. ``--corpus`` defaults to the corpus files the artifact records as its
inputs. Word2Vec (skip-gram with negative sampling, and CBOW)
is trained on the same corpus, tokenized by the job's tokenizer with the artifact's
settings, one sentence per line, with the same window and min-count and as many
dimensions as the SVD vectors. All four models are scored by gensim's
``KeyedVectors.evaluate_word_pairs`` (WordSim353, SimLex-999: Spearman rho, OOV %) and
``evaluate_word_analogies`` (Google analogies: accuracy, OOV %) on the files gensim ships
in gensim/test/test_data.
"""
from __future__ import annotations

import argparse
import glob
import logging
import sys
import time

import numpy as np
from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath

from beam_jobs.cooccurrence.counting import Tokenizer
from mlbatch import logs, storage
from mlbatch.artifacts import ArtifactError, ArtifactWriter, Manifest, write_json
from mlbatch.artifacts.cooccurrence import CooccurrenceArtifact, load_cooccurrence
from mlbatch.artifacts.cooccurrence_evaluation import RESULTS, TABLE, TYPE

LOGGER = logging.getLogger(__name__)
JOB = "beam_jobs.cooccurrence.evaluate"
PAIRS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
ANALOGIES = "questions-words.txt"


def keyed_vectors(tokens: list[str], vectors: np.ndarray) -> KeyedVectors:
    kv = KeyedVectors(vector_size=vectors.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(tokens, vectors.astype(np.float32))
    return kv


def ppmi_keyed_vectors(art: CooccurrenceArtifact, max_words: int) -> KeyedVectors | None:
    """PPMI rows as dense vectors (V x V float32), or None when too big or absent."""
    if not art.has("ppmi"):
        return None
    if art.vocab_size > max_words:
        LOGGER.warning("skipping PPMI rows: %d words > --max-ppmi-words %d", art.vocab_size,
                       max_words)
        return None
    return keyed_vectors(art.vocabulary().tokens, art.ppmi().toarray())


def corpus_files(art: CooccurrenceArtifact, pattern: str | None) -> list[str]:
    """The --corpus glob's files (local), or the corpus files the artifact records."""
    if pattern is None:
        return [e["uri"] for e in art.manifest.inputs if e["role"] == "corpus"]
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"--corpus {pattern!r} matches no files")
    return files


def corpus_sentences(files: list[str], tokenizer: Tokenizer) -> list[list[str]]:
    sentences = []
    for uri in files:
        text = storage.read_bytes(uri).decode("utf-8", errors="replace")
        sentences.extend(line for line in tokenizer.token_lines(text) if line)
    return sentences


def analogy_questions() -> int:
    with open(datapath(ANALOGIES), encoding="utf-8") as f:
        return sum(1 for line in f if line.strip() and not line.startswith(":"))


def score(kv: KeyedVectors, total_questions: int) -> dict:
    result = {}
    for name, filename in PAIRS.items():
        _, spearman, oov = kv.evaluate_word_pairs(datapath(filename))
        result[name] = {"spearman": float(spearman[0]), "oov_pct": float(oov)}
    accuracy, sections = kv.evaluate_word_analogies(datapath(ANALOGIES))
    total = next(s for s in sections if s["section"] == "Total accuracy")
    answered = len(total["correct"]) + len(total["incorrect"])
    result["analogies"] = {"accuracy": float(accuracy), "answered": answered,
                           "oov_pct": 100.0 * (1 - answered / total_questions)}
    return result


def train_word2vec(sentences, sg: int, dim: int, window: int, min_count: int, epochs: int,
                   workers: int, seed: int) -> tuple[KeyedVectors, float]:
    start = time.perf_counter()
    model = Word2Vec(sentences, vector_size=dim, window=window, min_count=min_count, sg=sg,
                     negative=5, epochs=epochs, workers=workers, seed=seed)
    return model.wv, time.perf_counter() - start


def evaluate(args: argparse.Namespace) -> dict:
    art = load_cooccurrence(args.vectors)
    if not art.has("vectors"):
        raise ArtifactError(f"{art.root} has no SVD vectors: run the job with --svd-dim")
    body, power = art.body, art.config.get("svd_power")
    tokenizer = Tokenizer(body["tokenizer"]["pattern"], body["tokenizer"]["lowercase"])
    svd = keyed_vectors(*art.vectors())
    dim = svd.vector_size
    files = corpus_files(art, args.corpus)
    sentences = corpus_sentences(files, tokenizer)
    questions = analogy_questions()
    models = {f"ours: SVD of PPMI ({dim}d, p={power})": svd}
    ppmi = ppmi_keyed_vectors(art, args.max_ppmi_words)
    if ppmi is not None:
        models[f"ours: PPMI rows ({ppmi.vector_size}d sparse)"] = ppmi
    timings = {}
    for label, sg in (("gensim Word2Vec SGNS", 1), ("gensim Word2Vec CBOW", 0)):
        kv, seconds = train_word2vec(sentences, sg, dim, body["window"], body["min_count"],
                                     args.epochs, args.workers, args.seed)
        name = f"{label} ({dim}d, {args.epochs} epochs)"
        models[name], timings[name] = kv, round(seconds, 1)
    rows = {name: {"vocab": len(kv), **score(kv, questions)} for name, kv in models.items()}
    return {"vectors": art.root, "digest": art.digest, "corpus": files,
            "sentences": len(sentences), "tokens": sum(map(len, sentences)),
            "window": body["window"], "min_count": body["min_count"],
            "analogy_questions": questions, "word2vec_train_s": timings, "models": rows}


def markdown_table(result: dict) -> str:
    head = ("| model | vocab | WS353 rho | WS353 OOV % | SimLex rho | SimLex OOV % "
            "| analogies acc | analogies OOV % |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for name, r in result["models"].items():
        lines.append(f"| {name} | {r['vocab']} | {r['wordsim353']['spearman']:.3f} "
                     f"| {r['wordsim353']['oov_pct']:.1f} | {r['simlex999']['spearman']:.3f} "
                     f"| {r['simlex999']['oov_pct']:.1f} | {r['analogies']['accuracy']:.3f} "
                     f"| {r['analogies']['oov_pct']:.1f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", required=True, help="the job's --output directory")
    parser.add_argument("--output", required=True,
                        help="the evaluation's own artifact directory (not inside --vectors)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a committed evaluation in --output")
    parser.add_argument("--corpus", help="glob of the job's input files (default: the "
                                         "corpus files recorded in the artifact)")
    parser.add_argument("--epochs", type=int, default=5, help="Word2Vec epochs (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="Word2Vec threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-ppmi-words", type=int, default=30_000,
                        help="skip the dense PPMI-row model above this vocabulary size")
    return parser.parse_args(argv)


def _check_output(args: argparse.Namespace) -> None:
    vectors, output = storage.locate(args.vectors).uri, storage.locate(args.output).uri
    if output == vectors or output.startswith(vectors.rstrip("/") + "/"):
        raise ArtifactError(f"--output {output} is inside --vectors {vectors}: the "
                            "co-occurrence artifact is committed and stays unchanged; choose "
                            "a directory of its own")


def run(argv: list[str] | None = None) -> Manifest:
    """Scores the vectors and commits the evaluation artifact; returns its manifest.
    Raises ArtifactError (unreadable --vectors, bad --output) or FileNotFoundError."""
    args = parse_args(argv)
    _check_output(args)
    writer = ArtifactWriter(args.output, TYPE, job=JOB, config={
        k: v for k, v in vars(args).items() if k != "overwrite"})
    art = writer.input_artifact("vectors", args.vectors, "cooccurrence")
    result = evaluate(args)
    writer.claim(overwrite=args.overwrite)
    with writer:  # an exception marks the output failed
        return _commit(writer, art, result)


def _commit(writer: ArtifactWriter, art: Manifest, result: dict) -> Manifest:
    recorded = {e["uri"]: e for e in art.inputs if e["role"] == "corpus"}
    for uri in result["corpus"]:
        known = recorded.get(uri, {})
        writer.input_file("corpus", uri, sha256=known.get("sha256"), size=known.get("size"))
    write_json(storage.join(writer.root, RESULTS), result)
    storage.write_text(storage.join(writer.root, TABLE), markdown_table(result) + "\n")
    writer.metrics.update(models=len(result["models"]), sentences=result["sentences"],
                          tokens=result["tokens"])
    return writer.commit(body={"results": RESULTS, "table": TABLE,
                               "models": sorted(result["models"])})


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 when committed, 2 for usage errors and unreadable inputs."""
    try:
        manifest = run(argv)
    except (ArtifactError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(storage.read_text(manifest.path(TABLE)), end="")
    print(f"committed {manifest.root} ({manifest.digest})")
    return 0


if __name__ == "__main__":
    logs.setup()
    logging.getLogger("gensim").setLevel(logging.WARNING)
    sys.exit(main())
