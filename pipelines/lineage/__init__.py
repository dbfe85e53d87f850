"""The lineage store: which step built which artifact from what, in ML Metadata's model.

``LineageStore(path)`` (a SQLite file, normally ``RUN/lineage.sqlite``) keeps MLMD's
tables and names (``pipelines.lineage.schema``); ``record_step`` records one pipeline step
from its artifacts' ``artifact.json``; ``lineage(uri, direction)`` walks the graph.
``python -m pipelines.lineage show URI [--store S] [--downstream] [--json]`` prints it.
See docs/lineage.md.
"""
from pipelines.lineage.graph import find_artifact, lineage
from pipelines.lineage.record import record_step
from pipelines.lineage.render import render
from pipelines.lineage.schema import ArtifactState, EventType, ExecutionState, PropertyType
from pipelines.lineage.store import LineageError, LineageStore

STORE_NAME = "lineage.sqlite"

__all__ = ["STORE_NAME", "ArtifactState", "EventType", "ExecutionState", "LineageError",
           "LineageStore", "PropertyType", "find_artifact", "lineage", "record_step", "render"]
