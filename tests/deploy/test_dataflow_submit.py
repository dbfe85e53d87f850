"""scripts/dataflow_submit.py: settings checked before anything runs, and a dry run that
writes the Dataflow job description of every Beam step (offline)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from beam_jobs.common.options import dry_run_summary
from scripts.dataflow_submit import main
from tests.conftest import REPO_ROOT

PIPELINE = """pipeline: nlp
steps:
  cooccurrence:
    job: beam_jobs.cooccurrence
    args: {input: "texts/*.txt", window: 5, min_count: 1}
    raw: [input]
  xgboost:
    job: ray_jobs.xgboost
    args: {features: "${cooccurrence}"}
"""
GOOD = {"GOOGLE_CLOUD_PROJECT": "my-project", "REGION": "europe-west4",
        "BUCKET": "gs://my-bucket/mlbatch", "SERVICE_ACCOUNT":
        "dataflow@my-project.iam.gserviceaccount.com",
        "SDK_CONTAINER_IMAGE": "europe-docker.pkg.dev/my-project/mlbatch/mlbatch:1.0"}


@pytest.fixture()
def spec(tmp_path):
    path = tmp_path / "nlp.yaml"
    path.write_text(PIPELINE)
    return path


def _env(monkeypatch, values):
    for name in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "REGION",
                 "GOOGLE_CLOUD_REGION", "BUCKET", "SERVICE_ACCOUNT", "SDK_CONTAINER_IMAGE",
                 "DATAFLOW_TEMP"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("values, problems", [
    ({}, ["GOOGLE_CLOUD_PROJECT is not set", "REGION is not set", "BUCKET is not set"]),
    ({"GOOGLE_CLOUD_PROJECT": "My_Project", "REGION": "mars", "BUCKET": "/local/dir",
      "SERVICE_ACCOUNT": "bob", "DATAFLOW_TEMP": "/tmp"},
     ["GOOGLE_CLOUD_PROJECT='My_Project' is no project id", "REGION='mars' is no region",
      "BUCKET='/local/dir' must be a gs:// URI", "DATAFLOW_TEMP='/tmp' must be a gs:// URI",
      "SERVICE_ACCOUNT='bob' is no service account e-mail"]),
])
def test_settings_are_checked_before_anything_runs(spec, monkeypatch, capsys, values, problems):
    _env(monkeypatch, values)
    assert main([str(spec), "--dry-run", "unused"]) == 2
    err = capsys.readouterr().err
    for problem in problems:
        assert problem in err
    assert len(err.strip().splitlines()) == 1 + len(problems)  # all named, nothing else


def test_local_raw_inputs_and_non_beam_steps_are_refused(spec, monkeypatch, capsys):
    _env(monkeypatch, GOOD)
    assert main([str(spec)]) == 2
    assert ("step 'cooccurrence': raw input 'texts/*.txt' is local: Dataflow workers read "
            "gs:// only") in capsys.readouterr().err
    assert main([str(spec), "--steps", "xgboost", "--data-root", "gs://b/src"]) == 2
    assert "'xgboost' is not a Beam step of 'nlp'" in capsys.readouterr().err


def test_dry_run_writes_every_job_description(spec, tmp_path):
    (tmp_path / "texts").mkdir()
    for i, text in enumerate(["the cat sat on the mat", "the dog sat on the log"]):
        (tmp_path / "texts" / f"t{i}.txt").write_text(text + "\n")
    out = tmp_path / "jobs"
    env = {k: v for k, v in os.environ.items() if k not in GOOD}
    proc = subprocess.run([sys.executable, "-m", "scripts.dataflow_submit", str(spec),
                           "--data-root", str(tmp_path), "--job-suffix", "-001",
                           "--dry-run", str(out), "--machine_type", "n2-standard-8",
                           "--max_num_workers=20", "--no_use_public_ips", "--subnetwork",
                           "regions/europe-west4/subnetworks/s1"], env={**env, **GOOD}, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["commands.json", "cooccurrence.json"]
    command = json.loads((out / "commands.json").read_text())["cooccurrence"]
    assert command[1:10] == ["-m", "beam_jobs.cooccurrence", "--input",
                             f"{tmp_path}/texts/*.txt", "--window", "5", "--min-count", "1",
                             "--output"]
    assert command[10] == "gs://my-bucket/mlbatch/runs/nlp/cooccurrence"
    job = dry_run_summary(out / "cooccurrence.json")
    assert job["name"] == "nlp-cooccurrence-001"
    assert {"CountVocabulary", "CountCooccurrences"} <= set(job["transforms"])
    opts = job["options"]
    assert (opts["project"], opts["region"]) == ("my-project", "europe-west4")
    assert re.match(r"gs://my-bucket/mlbatch/tmp/nlp-cooccurrence-001-[0-9a-f]{8}",
                    opts["temp_location"])  # the run's own temp location
    assert (opts["machine_type"], opts["max_num_workers"], opts["use_public_ips"],
            opts["subnetwork"]) == ("n2-standard-8", 20, False,
                                    "regions/europe-west4/subnetworks/s1")
    assert opts["staging_location"].startswith("gs://my-bucket/mlbatch/staging/")
    assert opts["service_account_email"] == GOOD["SERVICE_ACCOUNT"]
    assert opts["sdk_container_image"] == GOOD["SDK_CONTAINER_IMAGE"]
    assert job["packages"] == []  # the image has the package: no sdist staged


def test_unknown_or_bad_pass_through_flags_are_refused_naming_them(spec, monkeypatch, capsys):
    _env(monkeypatch, GOOD)
    assert main([str(spec), "--data-root", "gs://b/src", "--machine_typo", "n2",
                 "--dry-run", "unused"]) == 2
    assert "--machine_typo is unknown to Beam's pipeline options" in capsys.readouterr().err
    assert main([str(spec), "--data-root", "gs://b/src", "--max_num_workers", "x"]) == 2
    assert "argument --max_num_workers: invalid int value: 'x'" in capsys.readouterr().err


def test_raw_data_goes_under_the_data_root_and_schemas_stay():
    from pipelines.remote import entrypoint, local_raw_inputs
    from pipelines.spec import load_pipeline
    step = load_pipeline(REPO_ROOT / "pipelines" / "flights.yaml").steps["features"]
    assert entrypoint(step, "gs://b/run", data_root="gs://b/src")[3:] == [
        "--schema", "schemas/flights.yaml", "--input", "gs://b/src/data/flights_months",
        "--periods", "2013-01..2013-09", "--output", "gs://b/run/features"]
    assert local_raw_inputs([step], "gs://b/src") == []
    assert local_raw_inputs([step], None) == [
        "step 'features': raw input 'data/flights_months' is local"]
