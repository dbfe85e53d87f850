"""The store's records as Python values (MLMD's proto messages, without protobuf), and
how a property value maps to the property tables' columns."""
from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from typing import Any

from pipelines.lineage.schema import ArtifactState, EventType, ExecutionState, PropertyType
from mlbatch.errors import UsageError

PathStep = str | int  # an EventPath step: a key or an index


class LineageError(ValueError, UsageError):
    """The store cannot do what was asked (the message names the record and why)."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    id: int
    type: str
    uri: str
    state: ArtifactState
    name: str | None
    properties: dict[str, Any]
    custom_properties: dict[str, Any]
    create_time_since_epoch: int
    last_update_time_since_epoch: int


@dataclasses.dataclass(frozen=True)
class Execution:
    id: int
    type: str
    name: str | None
    last_known_state: ExecutionState
    properties: dict[str, Any]
    custom_properties: dict[str, Any]
    create_time_since_epoch: int
    last_update_time_since_epoch: int


@dataclasses.dataclass(frozen=True)
class Context:
    id: int
    type: str
    name: str
    properties: dict[str, Any]
    custom_properties: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Event:
    artifact_id: int
    execution_id: int
    type: EventType
    path: tuple[PathStep, ...]
    milliseconds_since_epoch: int


def now_ms() -> int:
    return int(time.time() * 1000)


def property_columns(value: Any, declared: PropertyType | None, where: str) -> dict[str, Any]:
    """The property-table columns holding ``value`` (checked against its declared type)."""
    if isinstance(value, bool):
        kind, cols = PropertyType.BOOLEAN, {"bool_value": value}
    elif isinstance(value, int):
        kind, cols = PropertyType.INT, {"int_value": value}
    elif isinstance(value, float):
        kind, cols = PropertyType.DOUBLE, {"double_value": value}
    elif isinstance(value, str):
        kind, cols = PropertyType.STRING, {"string_value": value}
    elif isinstance(value, (dict, list)):
        kind, cols = PropertyType.STRUCT, {"byte_value": json.dumps(value, sort_keys=True,
                                                                    default=str).encode()}
    else:
        raise LineageError(f"{where}: unsupported property value {value!r} "
                           f"({type(value).__name__})")
    if declared is PropertyType.DOUBLE and kind is PropertyType.INT:
        kind, cols = PropertyType.DOUBLE, {"double_value": float(value)}
    if declared is not None and declared is not kind:
        raise LineageError(f"{where}: declared {declared.name}, got {kind.name} {value!r}")
    return cols


def property_value(row: sqlite3.Row) -> Any:
    if row["bool_value"] is not None:
        return bool(row["bool_value"])
    if row["int_value"] is not None:
        return int(row["int_value"])
    if row["double_value"] is not None:
        return float(row["double_value"])
    if row["byte_value"] is not None:
        return json.loads(bytes(row["byte_value"]).decode())
    return row["string_value"]
