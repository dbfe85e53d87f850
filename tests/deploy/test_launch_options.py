"""Launchers pass Beam / Dataflow options through (checked by Beam's own option classes),
refuse local paths for Dataflow runs and give every run a temp location of its own."""
from __future__ import annotations

import re

import pytest

from beam_jobs.common.options import OptionsError, pipeline_options, refuse_local_paths
from pipelines import placement, remote
from pipelines.spec import parse_pipeline

DATAFLOW = ["--runner", "DataflowRunner", "--project", "my-project", "--region",
            "europe-west4", "--temp_location", "gs://b/tmp"]
PRODUCTION = ["--machine_type", "n2-standard-8", "--max_num_workers=20", "--network", "vpc1",
              "--subnetwork", "regions/europe-west4/subnetworks/s1", "--no_use_public_ips",
              "--dataflow_service_options=enable_prime", "--experiments", "use_runner_v2"]


@pytest.mark.parametrize("flags, problems", [
    (PRODUCTION, []),
    (["--machine-type", "n2-standard-8"], []),  # Beam accepts the dashed spelling too
    (["--machine_typo", "n2"], ["--machine_typo is unknown to Beam's pipeline options"]),
    (["--max_num_workers=many"], ["argument --max_num_workers: invalid int value: 'many'"]),
    (["--project", "other", "--job_name=x"],
     ["--project is set by the launcher (from GOOGLE_CLOUD_PROJECT)",
      "--job_name is set by the launcher (from the launcher)"]),
    (["n2-standard-8"], ["'n2-standard-8' is a value, not a flag"]),
])
def test_dataflow_options_are_judged_by_beams_option_classes(flags, problems):
    assert remote.dataflow_option_problems(flags) == problems


def _cloud_env(**more):
    return {"GOOGLE_CLOUD_PROJECT": "my-proj", "REGION": "europe-west1", "BUCKET": "gs://bkt",
            **more}


def test_env_options_reach_every_launcher_and_the_image_is_the_default():
    cfg = remote.CloudConfig.from_env(_cloud_env(
        DATAFLOW_OPTIONS="--machine_type n2-highmem-4 --no_use_public_ips"))
    flags = remote.dataflow_flags(cfg, "p-s")
    assert flags[flags.index("--sdk_container_image") + 1] == (
        "europe-west1-docker.pkg.dev/my-proj/mlbatch/mlbatch:0.1.0")
    assert flags[-3:] == ["--machine_type", "n2-highmem-4", "--no_use_public_ips"]
    sdist = remote.CloudConfig.from_env(_cloud_env(SDK_CONTAINER_IMAGE="sdist"))
    assert "--sdk_container_image" not in remote.dataflow_flags(sdist, "p-s")  # opt-in
    with pytest.raises(remote.RemoteConfigError,
                       match=r"DATAFLOW_OPTIONS: --region is set by the launcher "
                             r"\(from REGION\)"):
        remote.CloudConfig.from_env(_cloud_env(DATAFLOW_OPTIONS="--region us-east1"))
    with pytest.raises(remote.RemoteConfigError, match="DATAFLOW_OPTIONS cannot be split"):
        remote.CloudConfig.from_env(_cloud_env(DATAFLOW_OPTIONS="--labels 'a=b"))


def test_runs_on_dataflow_refuses_local_raw_inputs():
    p = parse_pipeline("""
pipeline: t
steps:
  local: {job: beam_jobs.features, args: {schema: s, input: data/f}, raw: [input],
          runs_on: dataflow}
  remote: {job: beam_jobs.features, args: {schema: s, input: "gs://b/f"}, raw: [input],
           runs_on: dataflow}
""")
    with pytest.raises(placement.PlacementError,
                       match=r"step 'local': raw input 'data/f' is local: runs_on: dataflow "
                             r"needs gs:// inputs"):
        placement.where(p.steps["local"], _cloud_env())
    assert placement.where(p.steps["remote"], _cloud_env()) == "dataflow"


def test_jobs_refuse_local_paths_on_dataflow_but_not_on_a_dry_run():
    with pytest.raises(OptionsError) as e:
        refuse_local_paths(DATAFLOW, input="data/sotu/*.txt", output="gs://b/out")
    assert str(e.value) == ("invalid Dataflow options:\n  --input 'data/sotu/*.txt' is "
                            "local: Dataflow workers read and write gs:// only")
    with pytest.raises(OptionsError, match=r"(?s)--project is required.*--output '/o' is local"):
        refuse_local_paths(["--runner", "DataflowRunner"], input="gs://b/i", output="/o")
    refuse_local_paths([*DATAFLOW, "--dry_run"], input="data/x", output="/o")  # graph only
    refuse_local_paths([], input="data/x", output="/o")  # the local runner reads local files


def test_feature_job_refuses_a_local_input_on_dataflow(tmp_path, capsys):
    from tests.conftest import feature_job_main
    code, err = feature_job_main(capsys, tmp_path / "raw", "gs://b/features", *DATAFLOW)
    assert code == 2  # a usage error, before anything runs
    assert f"--input '{tmp_path / 'raw'}' is local: Dataflow workers read" in err


def test_every_run_gets_its_own_temp_location():
    args = [*DATAFLOW, "--job_name", "flights-features-7"]
    first = pipeline_options(args, job_name="features").get_all_options()["temp_location"]
    second = pipeline_options(args, job_name="features").get_all_options()["temp_location"]
    pattern = r"gs://b/tmp/flights-features-7-[0-9a-f]{8}"
    assert re.fullmatch(pattern, first) and re.fullmatch(pattern, second)
    assert first != second  # two runs at once never share (nor delete) each other's files
    local = pipeline_options(["--temp_location", "/scratch/"], job_name="cooccurrence")
    assert re.fullmatch(r"/scratch/cooccurrence-[0-9a-f]{8}",
                        local.get_all_options()["temp_location"])


CANCEL_SCRIPT = r"""
import sys, time
from beam_jobs.common.options import _wait_or_cancel

class LaunchedJob:  # what DataflowRunner's result does for a launcher: wait, cancel
    def wait_until_finish(self):
        print("waiting", flush=True)
        time.sleep(600)
    def cancel(self):
        print("cancelled the job", flush=True)

try:
    _wait_or_cancel(LaunchedJob())
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_a_terminated_launcher_cancels_its_job():
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    proc = subprocess.Popen([sys.executable, "-c", CANCEL_SCRIPT], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "waiting"
    proc.send_signal(signal.SIGTERM)  # the task running the launcher was cancelled
    assert proc.wait(timeout=60) == 130
    assert proc.stdout.read().strip() == "cancelled the job"
