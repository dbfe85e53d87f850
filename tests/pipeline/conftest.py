"""The pipeline runner's scenario: one small real pipeline (features on the flights slice,
then XGBoost on the shared Ray cluster) run through every caching case in turn, once per
session; the tests then check each phase's outcome."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SPEC = """
pipeline: tiny
steps:
  features:
    job: beam_jobs.features
    args: {{schema: {schema}, input: {raw}}}
    raw: [schema, input]
{extra}  xgboost:
    job: ray_jobs.xgboost
    args: {{features: "${{features}}", num_boost_round: {rounds}, num_actors: 1,
           cpus_per_actor: 1, early_stopping_rounds: 0, max_actor_restarts: 0}}
    runs_on: "ray:{address}"
"""
# a step failing at once (a config error) and its downstream step, in another branch
FAILING = """  bad:
    job: ray_jobs.xgboost
    args: {features: "${features}", num_boost_round: 0}
  after_bad:
    job: ray_jobs.jax
    args: {features: "${bad}"}
"""


@dataclasses.dataclass
class Phase:
    rc: int
    stdout: str
    run: dict  # run.json

    def status(self) -> dict[str, str]:
        return {s["name"]: s["status"] for s in self.run["steps"]}


def digests(run_dir: Path, names=("features", "xgboost")) -> dict[str, str]:
    return {n: json.loads((run_dir / n / "artifact.json").read_text())["digest"] for n in names}


def file_hashes(run_dir: Path, name: str) -> dict[str, str]:
    doc = json.loads((run_dir / name / "artifact.json").read_text())
    return {f["path"]: f["sha256"] for f in doc["outputs"]["files"]}


class Scenario:
    def __init__(self, root: Path, raw: Path, address: str):
        self.root, self.raw, self.address = root, raw, address
        self.spec = root / "tiny.yaml"
        self.write_spec()

    def write_spec(self, rounds: int = 10, failing: bool = False) -> None:
        self.spec.write_text(SPEC.format(schema=REPO / "schemas" / "flights.yaml", raw=self.raw,
                                         rounds=rounds, address=self.address,
                                         extra=FAILING if failing else ""))

    def command(self, run_dir: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "pipelines", "run", str(self.spec), "--output",
                str(run_dir), *extra]

    def run(self, run_dir: Path, *extra: str) -> Phase:
        proc = subprocess.run(self.command(run_dir, *extra), capture_output=True, text=True,
                              cwd=REPO, timeout=600)
        doc = json.loads((run_dir / "run.json").read_text()) if not extra else {}
        return Phase(proc.returncode, proc.stdout + proc.stderr, doc)

    def run_killed(self, run_dir: Path, during: str) -> dict:
        """Starts the runner in its own process group; SIGKILLs the group once ``during``
        is running (its job's process started); returns run.json as the kill left it."""
        log = run_dir / "_logs" / f"{during}.log"
        log.unlink(missing_ok=True)  # an earlier run's
        proc = subprocess.Popen(self.command(run_dir), cwd=REPO, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if log.exists() and log.stat().st_size > 0:  # the job is up and logging
                    break
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return json.loads((run_dir / "run.json").read_text())


@pytest.fixture(scope="session")
def scenario(flights_slice, ray_cluster, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    raw = root / "raw"
    shutil.copytree(flights_slice, raw)
    sc = Scenario(root, raw, ray_cluster.gcs_address)
    out: dict = {"scenario": sc}
    run1 = root / "run"
    # A: a cold run; B: nothing changed
    out["cold"] = sc.run(run1)
    out["unchanged"] = sc.run(run1)
    out["dry_run"] = sc.run(run1, "--dry-run")
    # C: the run directory moved, raw files' mtimes touched
    run2 = root / "moved" / "run"
    run2.parent.mkdir()
    shutil.move(run1, run2)
    for f in raw.iterdir():
        os.utime(f, (time.time() + 60, time.time() + 60))
    out["moved"] = sc.run(run2)
    # D: one raw file changed (one flight's departure delay)
    flights = raw / "flights.csv"
    flights.write_bytes(_bump_dep_delay(flights.read_bytes()))
    out["raw"] = sc.run(run2)
    out["raw_files"] = {n: file_hashes(run2, n) for n in ("features", "xgboost")}
    # E: one trainer parameter changed, and a failing branch added
    sc.write_spec(rounds=12, failing=True)
    out["param_dry_run"] = sc.run(run2, "--dry-run")
    out["param"] = sc.run(run2)
    # F: the parameter back as in D, killed while the second step runs; G: the rerun
    sc.write_spec(rounds=10)
    out["killed"] = sc.run_killed(run2, during="xgboost")
    out["killed_xgboost_files"] = sorted(p.name for p in (run2 / "xgboost").glob("*"))
    out["resumed"] = sc.run(run2)
    out["resumed_files"] = {n: file_hashes(run2, n) for n in ("features", "xgboost")}
    out["run_dir"] = run2
    return out


def _bump_dep_delay(csv: bytes) -> bytes:
    """The flights table with the first flight's dep_delay one minute later."""
    lines = csv.split(b"\n")
    column = lines[0].split(b",").index(b"dep_delay")
    fields = lines[1].split(b",")
    fields[column] = str(int(fields[column]) + 1).encode()
    lines[1] = b",".join(fields)
    return b"\n".join(lines)
