"""The CLI on gensim's lee_background.cor, and the Dataflow dry run."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from beam_jobs.common.options import dry_run_summary
from beam_jobs.cooccurrence.__main__ import run
from mlbatch.artifacts import verify
from mlbatch.artifacts.cooccurrence import CooccurrenceContractError, load_cooccurrence
from tests.cooccurrence import reference
from tests.cooccurrence.test_counting import as_dict, assert_same_counts

REPO = Path(__file__).resolve().parents[2]
LEE = datapath("lee_background.cor")


@pytest.fixture(scope="module")
def lee_output(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lee") / "out"
    subprocess.run([sys.executable, "-m", "beam_jobs.cooccurrence", "--input", LEE,
                    "--output", str(out), "--window", "5", "--min-count", "5",
                    "--svd-dim", "16", "--rows-per-shard", "500"],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    return out


@pytest.mark.e2e
def test_cli_on_lee_corpus(lee_output):
    out = lee_output
    text = Path(LEE).read_text(encoding="utf-8")
    vocab, expected = reference.count_text(text, 5, 5)
    art = load_cooccurrence(out)
    tokens, counts = art.vocabulary().tokens, art.vocabulary().counts
    assert tokens == vocab
    assert_same_counts(as_dict(art.counts()), expected, "harmonic")
    assert len(list((out / "cooccurrence").glob("*.parquet"))) == -(-len(vocab) // 500)

    summary = art.summary()
    lines = reference.tokenize_lines(text)
    assert summary["lines"] == 300 and summary["files"] == 1
    assert summary["tokens"] == sum(map(len, lines))
    assert summary["kept_tokens"] == int(counts.sum())
    assert summary["nnz"] == len(expected) and summary["ppmi"]["nnz"] > 0

    assert art.dead_letters().num_rows == 0 and art.manifest.metrics["dead_letter_records"] == 0
    assert sorted(art.body["files"]) == ["cooccurrence", "dead_letter", "ppmi", "summary",
                                         "vectors", "vocab", "word2vec"]
    assert [e["uri"] for e in art.manifest.inputs] == [LEE]

    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    assert kv.index_to_key == vocab and kv.vector_size == 16
    assert kv.most_similar("australia", topn=3)[0][0] in vocab  # usable by gensim


def test_dataflow_dry_run_describes_the_job(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the cat sat\n")
    job_file = tmp_path / "job.json"
    run(["--input", str(corpus / "*.txt"), "--output", "gs://my-bucket/cooc",
         "--svd-dim", "8", "--runner", "DataflowRunner", "--project", "my-project",
         "--region", "us-central1", "--temp_location", "gs://my-bucket/tmp",
         "--dry_run=True", "--dataflow_job_file", str(job_file)], save_main_session=False)
    summary = dry_run_summary(job_file)
    assert summary["name"] == "cooccurrence"
    transforms = set(summary["transforms"])
    for step in ("PlanReads/MatchFiles", "ReadText", "TokenizeText/TokenizeBatches",
                 "CountVocabulary/SumTokenCounts", "CountCooccurrences/CountPairs",
                 "CountCooccurrences/SumPartials", "WriteCooccurrence", "ComputePPMI",
                 "WritePPMI", "FactorizePPMI/RunTruncatedSVD", "WriteVectors",
                 "WriteDeadLetters", "WriteSummary"):
        assert any(t == step or t.startswith(step + "/") for t in transforms), step
    assert not any(t.startswith("ReadTextForPairs") for t in transforms)  # read once
    options = summary["options"]
    assert options["project"] == "my-project" and options["region"] == "us-central1"
    assert options["temp_location"].startswith("gs://my-bucket/tmp")
    assert any("setup.py" in p for p in summary["packages"])
    assert not (tmp_path / "cooc").exists()  # nothing ran, nothing written


@pytest.mark.e2e
def test_evaluation_is_its_own_artifact_and_leaves_the_vectors_committed(lee_output, tmp_path):
    from beam_jobs.cooccurrence import evaluate
    from mlbatch.artifacts.cooccurrence_evaluation import load_evaluation
    vectors = load_cooccurrence(lee_output)
    before = {p.relative_to(lee_output): p.read_bytes() for p in lee_output.rglob("*")
              if p.is_file()}
    out = tmp_path / "evaluation"
    # --corpus defaults to the corpus files the artifact records as its inputs.
    assert evaluate.main(["--vectors", str(lee_output), "--epochs", "1",
                          "--output", str(out)]) == 0
    after = {p.relative_to(lee_output): p.read_bytes() for p in lee_output.rglob("*")
             if p.is_file()}
    assert after == before and verify(vectors.manifest) == []  # not one byte changed
    ev = load_evaluation(out)
    assert ev.vectors == {"role": "vectors", "kind": "artifact", "type": "cooccurrence",
                          "uri": str(lee_output), "digest": vectors.digest}
    (corpus,) = [e for e in ev.manifest.inputs if e["role"] == "corpus"]
    assert corpus["uri"] == LEE and corpus["sha256"] == vectors.manifest.input("corpus")["sha256"]
    assert verify(ev.manifest) == [] and sorted(f["path"] for f in ev.manifest.files) == [
        "evaluation.json", "evaluation.md"]
    result = ev.results
    assert result["corpus"] == [LEE] and result["digest"] == vectors.digest
    assert ev.manifest.body["models"] == sorted(result["models"]) == [
        "gensim Word2Vec CBOW (16d, 1 epochs)", "gensim Word2Vec SGNS (16d, 1 epochs)",
        f"ours: PPMI rows ({vectors.vocab_size}d sparse)", "ours: SVD of PPMI (16d, p=0.5)"]
    assert ev.manifest.metrics == {"models": 4, "sentences": result["sentences"],
                                   "tokens": result["tokens"]}
    vocab_sizes = {r["vocab"] for r in result["models"].values()}
    assert vocab_sizes == {vectors.vocab_size}  # same tokens
    for row in result["models"].values():
        for task in ("wordsim353", "simlex999"):
            assert -1 <= row[task]["spearman"] <= 1 and 0 < row[task]["oov_pct"] < 100
        assert row["analogies"]["answered"] > 0
        assert 0 <= row["analogies"]["accuracy"] <= 1
    assert result["analogy_questions"] == 19544
    table = (out / "evaluation.md").read_text().splitlines()
    assert len(table) == 2 + 4 and table[0].startswith("| model | vocab |")
    # the pipeline's key figure: the best WordSim353 rho of ours vs of word2vec
    from pipelines.figures import key_figures, summary
    rho = {name: r["wordsim353"]["spearman"] for name, r in result["models"].items()}
    assert key_figures(str(out))["wordsim353"] == rho
    ours = max(v for k, v in rho.items() if k.startswith("ours"))
    w2v = max(v for k, v in rho.items() if k.startswith("gensim"))
    assert summary(key_figures(str(out))) == f"WS353 rho: ours {ours:.4f}, word2vec {w2v:.4f}"


def test_evaluation_refuses_an_output_inside_the_vectors(lee_output, capsys):
    from beam_jobs.cooccurrence import evaluate
    assert evaluate.main(["--vectors", str(lee_output),
                          "--output", str(lee_output / "evaluation")]) == 2
    assert "is inside --vectors" in capsys.readouterr().err
    assert not (lee_output / "evaluation").exists()


def test_reader_follows_a_moved_copy_and_refuses_an_unknown_major_version(lee_output,
                                                                          tmp_path):
    from beam_jobs.cooccurrence import evaluate
    original = load_cooccurrence(lee_output)
    moved = tmp_path / "moved"
    shutil.copytree(lee_output, moved)
    art = load_cooccurrence(moved)
    assert art.root == str(moved) and art.digest == original.digest
    assert verify(art.manifest) == []
    assert (art.counts() != original.counts()).nnz == 0

    doc = json.loads((moved / "artifact.json").read_text())
    (moved / "artifact.json").write_text(json.dumps({**doc, "format_version": "99.0"}))
    with pytest.raises(CooccurrenceContractError, match="format_version 99.0 is not readable"):
        load_cooccurrence(moved)
    assert evaluate.main(["--vectors", str(moved), "--output", str(tmp_path / "ev")]) == 2
    assert not (tmp_path / "ev").exists()
    (moved / "artifact.json").write_text(json.dumps({**doc, "type": "features"}))
    with pytest.raises(CooccurrenceContractError, match="is a 'features' artifact"):
        load_cooccurrence(moved)
