"""``python -m pipelines.lineage show``: the printout a user reads, and its errors."""
from __future__ import annotations

import json
import subprocess
import sys

from mlbatch import storage
from mlbatch.artifacts.base import read_manifest
from pipelines.lineage import LineageStore
from pipelines.lineage.__main__ import main
from tests.conftest import REPO_ROOT
from tests.lineage.conftest import record, write_artifact


def test_show_prints_a_model_back_to_its_raw_files(recorded, flights_xgboost, flights_features,
                                                   flights_slice):
    store, _ = recorded
    proc = subprocess.run([sys.executable, "-m", "pipelines.lineage", "show",
                           str(flights_xgboost), "--store", str(store.path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"xgboost_model {flights_xgboost}"
    assert f"digest {read_manifest(flights_xgboost).digest}  state LIVE" in lines[1]
    assert any(line.strip().startswith("<- step xgboost [ray_jobs.xgboost] on local: COMPLETE,"
                                       " 2026-12-02T01:01:30+00:00 -> "
                                       "2026-12-02T01:01:42.5+00:00, 12.5 s") for line in lines)
    assert any(line.strip() == 'params {"num_boost_round": 15}' for line in lines)
    assert any(line.strip() == f"[features] features {flights_features}" for line in lines)
    assert any(f"also wrote [output/transform_fn] transform_fn {flights_features}/transform_fn"
               in line for line in lines)
    flights_csv = flights_slice / "flights.csv"
    at = lines.index(next(ln for ln in lines if ln.strip() == f"[raw:flights] file {flights_csv}"))
    assert lines[at + 1].strip().startswith(f"digest sha256:{storage.sha256(str(flights_csv))}")
    assert any(line.strip().startswith("[schema] file ") for line in lines)


def test_show_downstream_as_json(recorded, flights_slice, flights_jax, capsys):
    store, _ = recorded
    assert main(["show", str(flights_slice / "planes.csv"), "--store", str(store.path),
                 "--downstream", "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    feats = next(o for o in tree["consumed_by"][0]["outputs"] if o["role"] == "output")
    assert str(flights_jax) in [o["artifact"]["uri"] for use in feats["consumed_by"]
                                for o in use["outputs"]]


def test_show_finds_the_runs_store_and_names_what_is_missing(tmp_path, capsys):
    run = tmp_path / "run"
    out = write_artifact(run / "report", "hello")
    with LineageStore(run / "lineage.sqlite") as store:
        record(store, "report", "tests.lineage", [], out)
    assert main(["show", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"run_report {out}\n")
    assert main(["show", str(tmp_path / "elsewhere")]) == 2
    assert "no lineage.sqlite in" in capsys.readouterr().err
    assert main(["show", str(run / "nothing"), "--store", str(run / "lineage.sqlite")]) == 2
    assert f"no artifact recorded at {run / 'nothing'}" in capsys.readouterr().err
    assert main(["show", str(out), "--store", str(tmp_path / "absent.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err
