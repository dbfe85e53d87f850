"""The lineage store: which step built which artifact from what, in ML Metadata's model.

``LineageStore(path)`` (a SQLite file, normally ``RUN/lineage.sqlite``) keeps MLMD's
tables and names (``mlbatch.lineage.schema``); ``record_step`` records one pipeline step
from its artifacts' ``artifact.json``; ``lineage(uri, direction)`` walks the graph.
``python -m mlbatch.lineage show URI [--store S] [--downstream] [--json]`` prints it.
See docs/lineage.md.
"""
from mlbatch.lineage.graph import find_artifact
from mlbatch.lineage.render import render
from mlbatch.lineage.schema import ArtifactState, EventType, ExecutionState, PropertyType
from mlbatch.lineage.store import LineageError, LineageStore

STORE_NAME = "lineage.sqlite"

__all__ = ["STORE_NAME", "ArtifactState", "EventType", "ExecutionState", "LineageError",
           "LineageStore", "PropertyType", "find_artifact", "render"]
