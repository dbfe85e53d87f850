"""Scores the job's PPMI rows and SVD vectors next to gensim Word2Vec, with gensim's evaluators.

python -m beam_jobs.cooccurrence.evaluate --vectors out/cooccurrence \
    --corpus 'data/sotu/*.txt' [--epochs 5] [--output out/cooccurrence/evaluation.json]

``--vectors`` is the job's output directory (vocab/, ppmi/, vectors.txt, summary.json).
Word2Vec (skip-gram with negative sampling, and CBOW) is trained on the same corpus,
tokenized by the job's tokenizer with its settings from summary.json, one sentence per
line, with the same window and min-count and as many dimensions as the SVD vectors. All
four models are scored by gensim's ``KeyedVectors.evaluate_word_pairs`` (WordSim353,
SimLex-999: Spearman rho, OOV %) and ``evaluate_word_analogies`` (Google analogies:
accuracy, OOV %) on the files gensim ships in gensim/test/test_data.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import time
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath

from beam_jobs.cooccurrence.counting import Tokenizer
from beam_jobs.cooccurrence.io import read_triplets, read_vocab

LOGGER = logging.getLogger(__name__)
PAIRS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
ANALOGIES = "questions-words.txt"


def ppmi_keyed_vectors(output_dir: Path, max_words: int) -> KeyedVectors | None:
    """PPMI rows as dense vectors (V x V float32), or None when too big or absent."""
    tokens, _ = read_vocab(str(output_dir / "vocab"))
    if not (output_dir / "ppmi").exists():
        return None
    if len(tokens) > max_words:
        LOGGER.warning("skipping PPMI rows: %d words > --max-ppmi-words %d", len(tokens),
                       max_words)
        return None
    matrix = read_triplets(str(output_dir / "ppmi"), (len(tokens), len(tokens)))
    kv = KeyedVectors(vector_size=len(tokens), count=0, dtype=np.float32)
    kv.add_vectors(tokens, matrix.toarray().astype(np.float32))
    return kv


def corpus_sentences(pattern: str, tokenizer: Tokenizer) -> list[list[str]]:
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"--corpus {pattern!r} matches no files")
    sentences = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            sentences.extend(line for line in tokenizer.token_lines(f.read()) if line)
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
    out = Path(args.vectors)
    summary = json.loads((out / "summary.json").read_text())
    config = summary["config"]
    tokenizer = Tokenizer(config["token_pattern"], config["lowercase"])
    svd = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    dim = svd.vector_size
    sentences = corpus_sentences(args.corpus, tokenizer)
    questions = analogy_questions()
    models = {f"ours: SVD of PPMI ({dim}d, p={config['svd_power']})": svd}
    ppmi = ppmi_keyed_vectors(out, args.max_ppmi_words)
    if ppmi is not None:
        models[f"ours: PPMI rows ({ppmi.vector_size}d sparse)"] = ppmi
    timings = {}
    for label, sg in (("gensim Word2Vec SGNS", 1), ("gensim Word2Vec CBOW", 0)):
        kv, seconds = train_word2vec(sentences, sg, dim, config["window"],
                                     config["min_count"], args.epochs, args.workers,
                                     args.seed)
        name = f"{label} ({dim}d, {args.epochs} epochs)"
        models[name], timings[name] = kv, round(seconds, 1)
    rows = {name: {"vocab": len(kv), **score(kv, questions)} for name, kv in models.items()}
    return {"corpus": args.corpus, "sentences": len(sentences),
            "tokens": sum(map(len, sentences)), "window": config["window"],
            "min_count": config["min_count"], "analogy_questions": questions,
            "word2vec_train_s": timings, "models": rows}


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", required=True, help="the job's --output directory")
    parser.add_argument("--corpus", required=True, help="glob of the job's input files")
    parser.add_argument("--epochs", type=int, default=5, help="Word2Vec epochs (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="Word2Vec threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-ppmi-words", type=int, default=30_000,
                        help="skip the dense PPMI-row model above this vocabulary size")
    parser.add_argument("--output", help="JSON results (default <vectors>/evaluation.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    result = evaluate(args)
    output = Path(args.output or Path(args.vectors) / "evaluation.json")
    output.write_text(json.dumps(result, indent=1))
    print(markdown_table(result))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
