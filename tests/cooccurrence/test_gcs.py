"""The job reads its corpus from and commits its artifact to ``gs://``, offline: a local
Cloud Storage emulator (gcp-storage-emulator, 127.0.0.1) stands in for the bucket."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gensim.test.utils import datapath

from beam_jobs.cooccurrence.__main__ import run
from mlbatch import storage
from mlbatch.artifacts import verify
from mlbatch.artifacts.cooccurrence import load_cooccurrence
from tests.cooccurrence import reference
from tests.cooccurrence.test_counting import as_dict, assert_same_counts

EMULATOR = str(Path(sys.executable).with_name("gcp-storage-emulator"))
BUCKET = "cooc-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    port = _free_port()
    proc = subprocess.Popen([EMULATOR, "start", "-H", "127.0.0.1", "--port", str(port),
                             "--default-bucket", BUCKET, "-q", "-M"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the storage emulator did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.e2e
def test_corpus_and_artifact_on_gcs(emulator, monkeypatch):
    monkeypatch.setenv(storage.EMULATOR_ENV, emulator)
    # Without Google credentials Beam retries their lookup for about 24 s (once per
    # process) and then connects anonymously, which is what the emulator needs: start
    # from that outcome instead of waiting for it.
    from apache_beam.internal.gcp import auth
    monkeypatch.setattr(auth._Credentials, "_credentials_init", True)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)
    lee = Path(datapath("lee_background.cor"))
    storage.write_bytes(f"gs://{BUCKET}/corpus/lee.cor", lee.read_bytes())
    out = f"gs://{BUCKET}/cooc"
    manifest = run(["--input", f"gs://{BUCKET}/corpus/*.cor", "--output", out,
                    "--window", "5", "--min-count", "5"], save_main_session=False)
    art = load_cooccurrence(out)
    assert art.root == out and art.digest == manifest.digest and verify(art.manifest) == []
    assert [(e["uri"], e["size"], e["sha256"]) for e in art.manifest.inputs] == [
        (f"gs://{BUCKET}/corpus/lee.cor", lee.stat().st_size, storage.sha256(str(lee)))]
    vocab, expected = reference.count_text(lee.read_text(encoding="utf-8"), 5, 5)
    assert art.vocabulary().tokens == vocab
    assert_same_counts(as_dict(art.counts()), expected, "harmonic")
    assert art.dead_letters().num_rows == 0 and art.summary()["files"] == 1
