"""The lineage store's tables and enums: ML Metadata's (MLMD) relational schema in SQLite.

Table and column names, and every enum value, are MLMD's own (``metadata_store.proto``
and the SQLite schema MLMD's ``metadata_source_query_config`` creates), so moving the
records to MLMD or to Vertex ML Metadata is a copy, not a redesign:

* ``Type`` holds artifact, execution and context types (``type_kind`` tells which),
  ``TypeProperty`` their declared properties and ``data_type``s (``PropertyType``);
* ``Artifact`` / ``Execution`` / ``Context`` and their ``*Property`` tables (declared
  properties and, with ``is_custom_property`` = 1, custom ones);
* ``Event`` links an artifact to an execution (``Event.Type``), ``EventPath`` names the
  artifact's role in it (a key or index step); ``Attribution`` (context-artifact),
  ``Association`` (context-execution) and ``ParentContext`` (context-context).

Two liberties, both representable in MLMD: a STRUCT property value is stored as JSON
text in ``string_value`` (MLMD serialises a ``google.protobuf.Struct``), and times are
milliseconds since the epoch as in MLMD.
"""
from __future__ import annotations

import enum

# MLMD's schema version whose table layout this follows (MLMD >= 1.14 writes 10).
SCHEMA_VERSION = 10


class TypeKind(enum.IntEnum):
    """``Type.type_kind`` in MLMD's SQL schema."""
    EXECUTION_TYPE = 0
    ARTIFACT_TYPE = 1
    CONTEXT_TYPE = 2


class PropertyType(enum.IntEnum):
    """``ml_metadata.PropertyType``."""
    UNKNOWN = 0
    INT = 1
    DOUBLE = 2
    STRING = 3
    STRUCT = 4
    PROTO = 5
    BOOLEAN = 6


class ArtifactState(enum.IntEnum):
    """``ml_metadata.Artifact.State``."""
    UNKNOWN = 0
    PENDING = 1
    LIVE = 2
    MARKED_FOR_DELETION = 3
    DELETED = 4
    ABANDONED = 5
    REFERENCE = 6


class ExecutionState(enum.IntEnum):
    """``ml_metadata.Execution.State``."""
    UNKNOWN = 0
    NEW = 1
    RUNNING = 2
    COMPLETE = 3
    FAILED = 4
    CACHED = 5
    CANCELED = 6


class EventType(enum.IntEnum):
    """``ml_metadata.Event.Type``."""
    UNKNOWN = 0
    DECLARED_OUTPUT = 1
    DECLARED_INPUT = 2
    INPUT = 3
    OUTPUT = 4
    INTERNAL_INPUT = 5
    INTERNAL_OUTPUT = 6
    PENDING_OUTPUT = 7


def _property_table(table: str, owner: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS `{table}` (
  `{owner}` INT NOT NULL,
  `name` VARCHAR(255) NOT NULL,
  `is_custom_property` TINYINT(1) NOT NULL,
  `int_value` INT,
  `double_value` DOUBLE,
  `string_value` TEXT,
  `byte_value` BLOB,
  `proto_value` BLOB,
  `bool_value` BOOLEAN,
  PRIMARY KEY (`{owner}`, `name`, `is_custom_property`));"""


DDL = f"""
CREATE TABLE IF NOT EXISTS `MLMDEnv` (`schema_version` INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS `Type` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `name` VARCHAR(255) NOT NULL,
  `version` VARCHAR(255),
  `type_kind` TINYINT(1) NOT NULL,
  `description` TEXT,
  `input_type` TEXT,
  `output_type` TEXT,
  `external_id` VARCHAR(255) UNIQUE);
CREATE UNIQUE INDEX IF NOT EXISTS `idx_type_name_kind` ON `Type` (`name`, `type_kind`);
CREATE TABLE IF NOT EXISTS `ParentType` (
  `type_id` INT NOT NULL,
  `parent_type_id` INT NOT NULL,
  PRIMARY KEY (`type_id`, `parent_type_id`));
CREATE TABLE IF NOT EXISTS `TypeProperty` (
  `type_id` INT NOT NULL,
  `name` VARCHAR(255) NOT NULL,
  `data_type` INT NULL,
  PRIMARY KEY (`type_id`, `name`));
CREATE TABLE IF NOT EXISTS `Artifact` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `type_id` INT NOT NULL,
  `uri` TEXT,
  `state` INT,
  `name` VARCHAR(255),
  `external_id` VARCHAR(255) UNIQUE,
  `create_time_since_epoch` INT NOT NULL DEFAULT 0,
  `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,
  UNIQUE(`type_id`, `name`));
CREATE INDEX IF NOT EXISTS `idx_artifact_uri` ON `Artifact` (`uri`);
{_property_table("ArtifactProperty", "artifact_id")}
CREATE TABLE IF NOT EXISTS `Execution` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `type_id` INT NOT NULL,
  `last_known_state` INT,
  `name` VARCHAR(255),
  `external_id` VARCHAR(255) UNIQUE,
  `create_time_since_epoch` INT NOT NULL DEFAULT 0,
  `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,
  UNIQUE(`type_id`, `name`));
{_property_table("ExecutionProperty", "execution_id")}
CREATE TABLE IF NOT EXISTS `Context` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `type_id` INT NOT NULL,
  `name` VARCHAR(255) NOT NULL,
  `external_id` VARCHAR(255) UNIQUE,
  `create_time_since_epoch` INT NOT NULL DEFAULT 0,
  `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,
  UNIQUE(`type_id`, `name`));
{_property_table("ContextProperty", "context_id")}
CREATE TABLE IF NOT EXISTS `ParentContext` (
  `context_id` INT NOT NULL,
  `parent_context_id` INT NOT NULL,
  PRIMARY KEY (`context_id`, `parent_context_id`));
CREATE TABLE IF NOT EXISTS `Event` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `artifact_id` INT NOT NULL,
  `execution_id` INT NOT NULL,
  `type` INT NOT NULL,
  `milliseconds_since_epoch` INT,
  UNIQUE(`artifact_id`, `execution_id`, `type`));
CREATE INDEX IF NOT EXISTS `idx_event_execution_id` ON `Event` (`execution_id`);
CREATE TABLE IF NOT EXISTS `EventPath` (
  `event_id` INT NOT NULL,
  `is_index_step` TINYINT(1) NOT NULL,
  `step_index` INT,
  `step_key` TEXT);
CREATE INDEX IF NOT EXISTS `idx_eventpath_event_id` ON `EventPath` (`event_id`);
CREATE TABLE IF NOT EXISTS `Association` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `context_id` INT NOT NULL,
  `execution_id` INT NOT NULL,
  UNIQUE(`context_id`, `execution_id`));
CREATE TABLE IF NOT EXISTS `Attribution` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `context_id` INT NOT NULL,
  `artifact_id` INT NOT NULL,
  UNIQUE(`context_id`, `artifact_id`));
"""

# The tables every store has (tests and the migration notes list them).
TABLES = ("MLMDEnv", "Type", "ParentType", "TypeProperty", "Artifact", "ArtifactProperty",
          "Execution", "ExecutionProperty", "Context", "ContextProperty", "ParentContext",
          "Event", "EventPath", "Association", "Attribution")
