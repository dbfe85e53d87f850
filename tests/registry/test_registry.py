"""The model registry: versions, aliases and rollback through the CLI, and the one
resolver jobs use for ``registry:NAME@ALIAS`` (real model artifacts, a real store)."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from mlbatch.artifacts.base import read_manifest
from mlbatch.artifacts.registry import RegistryError, parse_ref, resolve, resolve_model_arg
from pipelines.lineage import LineageStore, lineage
from pipelines.model_registry import ModelRegistry
from pipelines.model_registry.__main__ import main


def cli(capsys, store, *argv: str) -> tuple[int, str, str]:
    code = main(["--registry", str(store), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_round_trip_with_rollback(tmp_path, capsys, flights_xgboost, flights_jax):
    store = tmp_path / "registry.sqlite"
    xgb, jax = read_manifest(flights_xgboost), read_manifest(flights_jax)
    assert cli(capsys, store, "register", "delay", str(flights_xgboost))[0] == 0
    code, out, _ = cli(capsys, store, "--json", "register", "delay", str(flights_jax))
    assert code == 0 and json.loads(out)["version"] == 2
    code, out, _ = cli(capsys, store, "--json", "register", "delay", str(flights_xgboost))
    assert json.loads(out)["version"] == 1  # the same bytes: the same version, no new one
    for version in (1, 2, 1):
        assert cli(capsys, store, "alias", "delay", "blessed", str(version))[0] == 0
    assert cli(capsys, store, "alias", "delay", "candidate", "2")[0] == 0
    code, out, _ = cli(capsys, store, "list")
    assert out == "delay  2 versions  blessed=1 candidate=2\n"
    code, out, _ = cli(capsys, store, "list", "delay")
    lines = out.splitlines()
    assert lines[0] == f"delay/1  [blessed]  xgboost_model  {xgb.digest[:19]}  {xgb.root}"
    assert lines[2] == f"delay/2  [candidate]  jax_model  {jax.digest[:19]}  {jax.root}"
    code, out, _ = cli(capsys, store, "rollback", "delay")
    assert (code, out) == (0, "delay@blessed: 1 -> 2 (rollback)\n")
    code, out, _ = cli(capsys, store, "rollback", "delay", "blessed")
    assert (code, out) == (0, "delay@blessed: 2 -> 1 (rollback)\n")
    code, _, err = cli(capsys, store, "rollback", "delay")
    assert code == 2 and "delay@blessed: nothing to roll back to (its history: [1])" in err
    code, out, _ = cli(capsys, store, "--json", "show", "delay@blessed")
    shown = json.loads(out)
    assert (shown["version"], shown["digest"], shown["uri"]) == (1, xgb.digest, xgb.root)
    assert shown["metrics"]["auc"] == xgb.metrics["auc"]
    assert [(m["action"], m.get("previous"), m["version"]) for m in shown["alias_moves"]
            if m["alias"] == "blessed"] == [("set", None, 1), ("set", 2, 1), ("rollback", 2, 1)]
    code, out, _ = cli(capsys, store, "history", "delay", "blessed")
    assert [line.split("  ", 1)[1] for line in out.splitlines()] == [
        "delay@blessed: None -> 1 (set)", "delay@blessed: 1 -> 2 (set)",
        "delay@blessed: 2 -> 1 (set)", "delay@blessed: 1 -> 2 (rollback)",
        "delay@blessed: 2 -> 1 (rollback)"]


def test_cli_names_what_is_missing(tmp_path, capsys, flights_features, flights_xgboost,
                                   monkeypatch):
    monkeypatch.delenv("MLBATCH_REGISTRY", raising=False)
    assert main(["list"]) == 2
    assert "no registry store: pass --registry or set MLBATCH_REGISTRY" in capsys.readouterr().err
    store = tmp_path / "r.sqlite"
    code, _, err = cli(capsys, store, "list")
    assert code == 2 and f"registry store {store} does not exist" in err
    code, _, err = cli(capsys, store, "register", "delay", str(flights_features))
    assert code == 2 and "is a 'features' artifact; a model is one of" in err
    assert cli(capsys, store, "register", "delay", str(flights_xgboost))[0] == 0
    code, _, err = cli(capsys, store, "alias", "delay", "blessed", "7")
    assert code == 2 and "model 'delay' has no version 7" in err
    code, _, err = cli(capsys, store, "alias", "delay", "bad alias", "1")
    assert code == 2 and "alias 'bad alias'" in err
    code, _, err = cli(capsys, store, "show", "delay@blessed")
    assert code == 2 and "model 'delay' has no alias 'blessed' (aliases: none)" in err
    code, _, err = cli(capsys, store, "show", "other/1")
    assert code == 2 and "no model named 'other' is registered" in err


def test_versions_are_lineage_linked_and_numbered_per_name(tmp_path, flights_xgboost,
                                                           flights_jax, flights_features):
    with LineageStore(tmp_path / "r.sqlite") as store:
        reg = ModelRegistry(store)
        assert [reg.register(n, str(m)).version for n, m in (
            ("a", flights_xgboost), ("b", flights_jax), ("a", flights_jax))] == [1, 1, 2]
        tree = lineage(store, str(flights_jax), "downstream")
        registered = [o["artifact"]["uri"] for use in tree["consumed_by"]
                      for o in use["outputs"]]
        assert sorted(registered) == ["registry:a/2", "registry:b/1"]
        up = lineage(store, str(flights_jax))  # the model's own record leads to its features
        assert up["artifact"]["properties"]["digest"] == read_manifest(flights_jax).digest
    assert read_manifest(flights_jax).input("features")["uri"] == str(flights_features)


@pytest.mark.parametrize("ref, parsed", [
    ("registry:delay@blessed", ("delay", "blessed", None)),
    ("registry:flights.delay_v2/12", ("flights.delay_v2", None, 12)),
])
def test_parse_ref(ref, parsed):
    assert parse_ref(ref) == parsed


@pytest.mark.parametrize("ref", ["registry:delay", "registry:delay@", "registry:/1",
                                 "registry:delay/v1", "delay@blessed"])
def test_parse_ref_refuses(ref):
    with pytest.raises(RegistryError, match="is no registry reference"):
        parse_ref(ref)


def test_resolver_follows_the_alias_and_refuses_replaced_bytes(tmp_path, flights_xgboost,
                                                               flights_jax, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(flights_xgboost, model)
    store = tmp_path / "r.sqlite"
    with LineageStore(store) as s:
        reg = ModelRegistry(s)
        reg.register("delay", str(model))
        reg.register("delay", str(flights_jax))
        reg.set_alias("delay", "blessed", 1)
    assert resolve_model_arg(str(flights_jax)) == (str(flights_jax), None)
    monkeypatch.setenv("MLBATCH_REGISTRY", str(store))
    uri, found = resolve_model_arg("registry:delay@blessed")
    assert (uri, found.version, found.alias) == (str(model), 1, "blessed")
    assert found.record() == {"name": "delay", "version": 1, "alias": "blessed",
                              "digest": read_manifest(flights_xgboost).digest,
                              "store": str(store)}
    assert resolve("registry:delay/2").uri == str(flights_jax)
    shutil.rmtree(model)  # another committed model at the same path: never read as version 1
    shutil.copytree(flights_jax, model)
    jax = read_manifest(flights_jax).digest
    with pytest.raises(RegistryError, match="registry:delay@blessed is delay version 1 at "
                       f"{model} with digest sha256:[0-9a-f]{{64}}, but that directory now "
                       f"holds {jax}: it was replaced after registration"):
        resolve("registry:delay@blessed")
    (model / "model" / "params.npz").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="registry:delay@blessed is delay version 1 at "
                       f"{model}, which cannot be read: "):
        resolve("registry:delay@blessed")
    with pytest.raises(RegistryError, match="has no alias 'serving'"):
        resolve("registry:delay@serving", str(store))
    with pytest.raises(RegistryError, match=f"registry store {tmp_path}/none.sqlite does not"):
        resolve("registry:delay@blessed", str(tmp_path / "none.sqlite"))
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database")
    with pytest.raises(RegistryError, match="cannot read the registry store"):
        resolve("registry:delay@blessed", str(bad))
    assert sqlite3.connect(store).execute("SELECT COUNT(*) FROM Artifact").fetchone()[0] == 4
