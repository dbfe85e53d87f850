"""The job reads its corpus from and commits its artifact to ``gs://``, offline: a local
Cloud Storage emulator (gcp-storage-emulator, 127.0.0.1) stands in for the bucket."""
from __future__ import annotations

from pathlib import Path

import pytest
from gensim.test.utils import datapath

from beam_jobs.cooccurrence.__main__ import run
from mlbatch import storage
from mlbatch.artifacts import verify
from mlbatch.artifacts.cooccurrence import load_cooccurrence
from tests.cooccurrence import reference
from tests.cooccurrence.test_counting import as_dict, assert_same_counts

@pytest.mark.e2e
def test_corpus_and_artifact_on_gcs(gcs_emulator):
    """On the session's emulator (tests/conftest.py: 127.0.0.1, credentials Beam accepts
    without a network look-up)."""
    bucket = f"{gcs_emulator.bucket}/cooccurrence"
    lee = Path(datapath("lee_background.cor"))
    storage.write_bytes(f"gs://{bucket}/corpus/lee.cor", lee.read_bytes())
    out = f"gs://{bucket}/cooc"
    manifest = run(["--input", f"gs://{bucket}/corpus/*.cor", "--output", out,
                    "--window", "5", "--min-count", "5"], save_main_session=False)
    art = load_cooccurrence(out)
    assert art.root == out and art.digest == manifest.digest and verify(art.manifest) == []
    assert [(e["uri"], e["size"], e["sha256"]) for e in art.manifest.inputs] == [
        (f"gs://{bucket}/corpus/lee.cor", lee.stat().st_size, storage.sha256(str(lee)))]
    vocab, expected = reference.count_text(lee.read_text(encoding="utf-8"), 5, 5)
    assert art.vocabulary().tokens == vocab
    assert_same_counts(as_dict(art.counts()), expected, "harmonic")
    assert art.dead_letters().num_rows == 0 and art.summary()["files"] == 1
