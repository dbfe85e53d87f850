"""``LineageStore``: ML Metadata's data model (types, artifacts, executions, contexts,
events, attributions, associations) in one local SQLite file.

The method names follow MLMD's Python ``MetadataStore`` (``put_artifact_type``,
``get_artifacts_by_uri``, ``get_events_by_execution_ids`` ...), but take and return plain
Python values instead of protos. Properties must be declared by the type, as in MLMD;
custom properties need no declaration. Every ``put_*`` is an upsert on MLMD's natural
key (a type's name, an artifact's/execution's/context's (type, name)), so recording the
same thing twice changes nothing.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlbatch import storage
from pipelines.lineage.nodes import (Artifact, Context, Event, Execution, LineageError,
                                   PathStep, property_columns, property_value, now_ms)
from pipelines.lineage.schema import (DDL, SCHEMA_VERSION, TABLES, ArtifactState, EventType,
                                    ExecutionState, PropertyType, TypeKind)

__all__ = ["Artifact", "Context", "Event", "Execution", "LineageError", "LineageStore"]

LOGGER = logging.getLogger(__name__)

_OWNERS = {"Artifact": ("ArtifactProperty", "artifact_id"),
           "Execution": ("ExecutionProperty", "execution_id"),
           "Context": ("ContextProperty", "context_id")}
_KINDS = {"Artifact": TypeKind.ARTIFACT_TYPE, "Execution": TypeKind.EXECUTION_TYPE,
          "Context": TypeKind.CONTEXT_TYPE}


class LineageStore:
    """A lineage store in the SQLite file ``path`` (created with its tables if absent)."""

    def __init__(self, path: str | os.PathLike):
        if storage.is_remote(os.fspath(path)):
            raise LineageError(f"the lineage store must be a local file, got {path}")
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:  # executescript commits by itself; every statement is idempotent
            self._db.executescript(f"BEGIN IMMEDIATE;\n{DDL}\nCOMMIT;")
            self._db.execute("INSERT OR IGNORE INTO MLMDEnv (schema_version) VALUES (?)",
                             (SCHEMA_VERSION,))

    # --- plumbing ------------------------------------------------------------------------
    def transaction(self) -> "_Transaction":
        """One write transaction (nested calls join the outer one)."""
        return _Transaction(self)

    def _q(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "LineageStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- types ---------------------------------------------------------------------------
    def _put_type(self, kind: TypeKind, name: str,
                  properties: Mapping[str, PropertyType | str]) -> int:
        props = {k: v if isinstance(v, PropertyType) else PropertyType[str(v).upper()]
                 for k, v in properties.items()}
        with self.transaction():
            rows = self._q("SELECT id FROM Type WHERE name = ? AND type_kind = ?",
                           (name, int(kind)))
            if rows:
                type_id = rows[0]["id"]
            else:
                type_id = self._db.execute("INSERT INTO Type (name, type_kind) VALUES (?, ?)",
                                           (name, int(kind))).lastrowid
            known = self._type_properties(type_id)
            for prop, data_type in props.items():
                if prop in known and known[prop] is not data_type:
                    raise LineageError(f"{kind.name} {name!r}: property {prop!r} is "
                                       f"{known[prop].name}, not {data_type.name}")
                if prop not in known:  # properties can be added, never changed (as MLMD)
                    self._db.execute("INSERT INTO TypeProperty (type_id, name, data_type) "
                                     "VALUES (?, ?, ?)", (type_id, prop, int(data_type)))
        return type_id

    def put_artifact_type(self, name: str,
                          properties: Mapping[str, PropertyType | str] = {}) -> int:
        return self._put_type(TypeKind.ARTIFACT_TYPE, name, properties)

    def put_execution_type(self, name: str,
                           properties: Mapping[str, PropertyType | str] = {}) -> int:
        return self._put_type(TypeKind.EXECUTION_TYPE, name, properties)

    def put_context_type(self, name: str,
                         properties: Mapping[str, PropertyType | str] = {}) -> int:
        return self._put_type(TypeKind.CONTEXT_TYPE, name, properties)

    def _type_properties(self, type_id: int) -> dict[str, PropertyType]:
        return {r["name"]: PropertyType(r["data_type"]) for r in
                self._q("SELECT name, data_type FROM TypeProperty WHERE type_id = ?",
                        (type_id,))}

    def _type_id(self, kind: TypeKind, name: str) -> int:
        rows = self._q("SELECT id FROM Type WHERE name = ? AND type_kind = ?", (name, int(kind)))
        if not rows:
            raise LineageError(f"no {kind.name} named {name!r}: put it first")
        return rows[0]["id"]

    # --- nodes ---------------------------------------------------------------------------
    def _write_properties(self, table: str, node_id: int, type_id: int, type_name: str,
                          properties: Mapping[str, Any], custom: Mapping[str, Any]) -> None:
        prop_table, owner = _OWNERS[table]
        declared = self._type_properties(type_id)
        for is_custom, values in ((0, properties), (1, custom)):
            for name, value in values.items():
                if not is_custom and name not in declared:
                    raise LineageError(f"{table} type {type_name!r} declares no property "
                                       f"{name!r} (declared: {sorted(declared)})")
                if value is None:
                    self._db.execute(f"DELETE FROM {prop_table} WHERE {owner} = ? AND name = ?"
                                     " AND is_custom_property = ?", (node_id, name, is_custom))
                    continue
                cols = property_columns(value, None if is_custom else declared[name],
                                f"{table} {type_name!r} property {name!r}")
                names = ", ".join(cols)
                marks = ", ".join("?" for _ in cols)
                self._db.execute(
                    f"INSERT OR REPLACE INTO {prop_table} ({owner}, name, is_custom_property, "
                    f"{names}) VALUES (?, ?, ?, {marks})", (node_id, name, is_custom,
                                                            *cols.values()))

    def _upsert(self, table: str, type_name: str, name: str, columns: dict[str, Any],
                properties: Mapping[str, Any], custom: Mapping[str, Any]) -> int:
        type_id = self._type_id(_KINDS[table], type_name)
        stamp = now_ms()
        with self.transaction():
            rows = self._q(f"SELECT id FROM {table} WHERE type_id = ? AND name = ?",
                           (type_id, name))
            if rows:
                node_id = rows[0]["id"]
                sets = ", ".join(f"{c} = ?" for c in [*columns, "last_update_time_since_epoch"])
                self._db.execute(f"UPDATE {table} SET {sets} WHERE id = ?",
                                 (*columns.values(), stamp, node_id))
            else:
                cols = ["type_id", "name", *columns, "create_time_since_epoch",
                        "last_update_time_since_epoch"]
                node_id = self._db.execute(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                    f"({', '.join('?' for _ in cols)})",
                    (type_id, name, *columns.values(), stamp, stamp)).lastrowid
            self._write_properties(table, node_id, type_id, type_name, properties, custom)
        return node_id

    def put_artifact(self, type_name: str, name: str, uri: str, *,
                     state: ArtifactState = ArtifactState.LIVE,
                     properties: Mapping[str, Any] = {},
                     custom_properties: Mapping[str, Any] = {}) -> int:
        """Creates or updates the artifact (type, name); returns its id."""
        return self._upsert("Artifact", type_name, name, {"uri": uri, "state": int(state)},
                            properties, custom_properties)

    def put_execution(self, type_name: str, name: str, *,
                      state: ExecutionState = ExecutionState.UNKNOWN,
                      properties: Mapping[str, Any] = {},
                      custom_properties: Mapping[str, Any] = {}) -> int:
        return self._upsert("Execution", type_name, name, {"last_known_state": int(state)},
                            properties, custom_properties)

    def put_context(self, type_name: str, name: str, *, properties: Mapping[str, Any] = {},
                    custom_properties: Mapping[str, Any] = {}) -> int:
        return self._upsert("Context", type_name, name, {}, properties, custom_properties)

    def set_artifact_state(self, artifact_id: int, state: ArtifactState) -> None:
        with self.transaction():
            self._db.execute("UPDATE Artifact SET state = ?, last_update_time_since_epoch = ? "
                             "WHERE id = ?", (int(state), now_ms(), artifact_id))

    # --- links ---------------------------------------------------------------------------
    def put_event(self, artifact_id: int, execution_id: int, type: EventType,
                  path: Iterable[PathStep] = ()) -> None:
        """Links an artifact to an execution (one event per artifact, execution, type)."""
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO Event (artifact_id, execution_id, type, "
                             "milliseconds_since_epoch) VALUES (?, ?, ?, ?)",
                             (artifact_id, execution_id, int(type), now_ms()))
            event_id = self._q("SELECT id FROM Event WHERE artifact_id = ? AND execution_id = ?"
                               " AND type = ?", (artifact_id, execution_id, int(type)))[0]["id"]
            self._db.execute("DELETE FROM EventPath WHERE event_id = ?", (event_id,))
            for step in path:
                index = isinstance(step, int)
                self._db.execute("INSERT INTO EventPath (event_id, is_index_step, step_index, "
                                 "step_key) VALUES (?, ?, ?, ?)",
                                 (event_id, int(index), step if index else None,
                                  None if index else str(step)))

    def delete_events_of_execution(self, execution_id: int) -> None:
        """Forgets an execution's events (before it is recorded afresh)."""
        with self.transaction():
            self._db.execute("DELETE FROM EventPath WHERE event_id IN (SELECT id FROM Event "
                             "WHERE execution_id = ?)", (execution_id,))
            self._db.execute("DELETE FROM Event WHERE execution_id = ?", (execution_id,))

    def put_attribution(self, context_id: int, artifact_id: int) -> None:
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO Attribution (context_id, artifact_id) "
                             "VALUES (?, ?)", (context_id, artifact_id))

    def put_association(self, context_id: int, execution_id: int) -> None:
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO Association (context_id, execution_id) "
                             "VALUES (?, ?)", (context_id, execution_id))

    def put_parent_context(self, child_id: int, parent_id: int) -> None:
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO ParentContext (context_id, "
                             "parent_context_id) VALUES (?, ?)", (child_id, parent_id))

    # --- reads ---------------------------------------------------------------------------
    def _properties(self, table: str, node_id: int) -> tuple[dict, dict]:
        prop_table, owner = _OWNERS[table]
        props: tuple[dict, dict] = ({}, {})
        for row in self._q(f"SELECT * FROM {prop_table} WHERE {owner} = ? ORDER BY name",
                           (node_id,)):
            props[row["is_custom_property"]][row["name"]] = property_value(row)
        return props

    def _nodes(self, table: str, where: str, args: Iterable[Any]) -> list[sqlite3.Row]:
        return self._q(f"SELECT n.*, t.name AS type_name FROM {table} n JOIN Type t ON "
                       f"t.id = n.type_id WHERE {where} ORDER BY n.id", args)

    def _artifact(self, row: sqlite3.Row) -> Artifact:
        props, custom = self._properties("Artifact", row["id"])
        return Artifact(row["id"], row["type_name"], row["uri"], ArtifactState(row["state"]),
                        row["name"], props, custom, row["create_time_since_epoch"],
                        row["last_update_time_since_epoch"])

    def _execution(self, row: sqlite3.Row) -> Execution:
        props, custom = self._properties("Execution", row["id"])
        return Execution(row["id"], row["type_name"], row["name"],
                         ExecutionState(row["last_known_state"]), props, custom,
                         row["create_time_since_epoch"], row["last_update_time_since_epoch"])

    def _context(self, row: sqlite3.Row) -> Context:
        props, custom = self._properties("Context", row["id"])
        return Context(row["id"], row["type_name"], row["name"], props, custom)

    def get_artifacts_by_id(self, ids: Iterable[int]) -> list[Artifact]:
        ids = list(ids)
        marks = ", ".join("?" for _ in ids) or "NULL"
        return [self._artifact(r) for r in self._nodes("Artifact", f"n.id IN ({marks})", ids)]

    def get_artifacts_by_uri(self, uri: str) -> list[Artifact]:
        return [self._artifact(r) for r in self._nodes("Artifact", "n.uri = ?", (uri,))]

    def get_artifacts(self, type_name: str | None = None) -> list[Artifact]:
        rows = (self._nodes("Artifact", "t.name = ?", (type_name,)) if type_name
                else self._nodes("Artifact", "1", ()))
        return [self._artifact(r) for r in rows]

    def get_executions_by_id(self, ids: Iterable[int]) -> list[Execution]:
        ids = list(ids)
        marks = ", ".join("?" for _ in ids) or "NULL"
        return [self._execution(r) for r in self._nodes("Execution", f"n.id IN ({marks})", ids)]

    def get_executions(self) -> list[Execution]:
        return [self._execution(r) for r in self._nodes("Execution", "1", ())]

    def get_executions_by_context(self, context_id: int) -> list[Execution]:
        return [self._execution(r) for r in self._nodes(
            "Execution", "n.id IN (SELECT execution_id FROM Association WHERE context_id = ?)",
            (context_id,))]

    def get_artifacts_by_context(self, context_id: int) -> list[Artifact]:
        return [self._artifact(r) for r in self._nodes(
            "Artifact", "n.id IN (SELECT artifact_id FROM Attribution WHERE context_id = ?)",
            (context_id,))]

    def get_contexts(self, type_name: str | None = None) -> list[Context]:
        rows = (self._nodes("Context", "t.name = ?", (type_name,)) if type_name
                else self._nodes("Context", "1", ()))
        return [self._context(r) for r in rows]

    def get_contexts_by_execution(self, execution_id: int) -> list[Context]:
        return [self._context(r) for r in self._nodes(
            "Context", "n.id IN (SELECT context_id FROM Association WHERE execution_id = ?)",
            (execution_id,))]

    def get_parent_contexts(self, context_id: int) -> list[Context]:
        return [self._context(r) for r in self._nodes(
            "Context", "n.id IN (SELECT parent_context_id FROM ParentContext WHERE "
            "context_id = ?)", (context_id,))]

    def _events(self, column: str, ids: Iterable[int]) -> list[Event]:
        ids = list(ids)
        marks = ", ".join("?" for _ in ids) or "NULL"
        events = []
        for row in self._q(f"SELECT * FROM Event WHERE {column} IN ({marks}) ORDER BY id", ids):
            steps = self._q("SELECT * FROM EventPath WHERE event_id = ? ORDER BY rowid",
                            (row["id"],))
            path = tuple(s["step_index"] if s["is_index_step"] else s["step_key"] for s in steps)
            events.append(Event(row["artifact_id"], row["execution_id"], EventType(row["type"]),
                                path, row["milliseconds_since_epoch"]))
        return events

    def get_events_by_artifact_ids(self, ids: Iterable[int]) -> list[Event]:
        return self._events("artifact_id", ids)

    def get_events_by_execution_ids(self, ids: Iterable[int]) -> list[Event]:
        return self._events("execution_id", ids)

    def count(self, table: str) -> int:
        """Rows in one of the store's tables (``schema.TABLES``)."""
        if table not in TABLES:
            raise LineageError(f"no table {table!r}")
        return self._q(f"SELECT COUNT(*) AS n FROM `{table}`")[0]["n"]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); re-entrant within one store."""

    def __init__(self, store: LineageStore):
        self.store = store

    def __enter__(self) -> None:
        self.store._lock.acquire()
        self.outer = not self.store._db.in_transaction
        if self.outer:
            self.store._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            if self.outer:
                self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store._lock.release()
