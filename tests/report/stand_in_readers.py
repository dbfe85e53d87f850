"""TEST STAND-INS ONLY, used while this checkout has no ``mlbatch.artifacts.predictions`` /
``mlbatch.artifacts.monitor`` (their jobs are built on other branches): the two readers
with the names and fields of /work/notes/INTERFACES.md. ``install()`` registers one only
when the real module is missing, so once those branches merge the real readers read the
fixture directories (tests/report/fixture_artifacts.py) instead."""
from __future__ import annotations

import dataclasses
import importlib
import sys
import types

import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch import storage
from mlbatch.artifacts import Manifest, read_json, read_manifest


@dataclasses.dataclass(frozen=True)
class Predictions:
    root: str
    manifest: Manifest

    def read_table(self) -> pa.Table:
        d = self.manifest.path("predictions")
        return pa.concat_tables([pq.read_table(storage.locate(storage.join(d, f.relpath)).path)
                                 for f in storage.list_files(d)])


@dataclasses.dataclass(frozen=True)
class MonitorResult:
    root: str
    manifest: Manifest
    drift: dict
    histograms: dict

    @property
    def breached(self) -> list[str]:
        return [f["name"] for f in self.drift["features"] if f["breach"]]


def load_predictions(root) -> Predictions:
    m = read_manifest(root, "predictions")
    return Predictions(m.root, m)


def load_monitor(root) -> MonitorResult:
    m = read_manifest(root, "monitor")
    return MonitorResult(m.root, m, read_json(m.path("drift.json")),
                         read_json(m.path("histograms.json")))


def install() -> list[str]:
    """Registers the stand-ins whose real module is missing; returns their names."""
    installed = []
    for name, attrs in (("predictions", {"load_predictions": load_predictions}),
                        ("monitor", {"load_monitor": load_monitor})):
        full = f"mlbatch.artifacts.{name}"
        try:
            importlib.import_module(full)
        except ImportError:
            module = types.ModuleType(full, __doc__)
            module.__dict__.update(attrs)
            sys.modules[full] = module
            installed.append(full)
    return installed
