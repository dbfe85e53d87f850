"""``registry:NAME@ALIAS`` / ``registry:NAME/VERSION``: a registered model version, resolved.

The model registry lives in a lineage store (a SQLite file in ML Metadata's layout,
``pipelines/lineage``); ``pipelines.model_registry`` writes it. This module is the one
reader every job shares: scoring and monitoring accept a registry reference wherever they
accept a model directory and call ``resolve_model_arg`` where they read ``--model``::

    uri, version = resolve_model_arg("registry:flights_delay@blessed", args.registry)
    version.name, version.version, version.digest, version.alias

The store is the ``--registry`` flag's value, else ``$MLBATCH_REGISTRY``. The flag may
also name a committed ``model_evaluation`` artifact (a pipeline's blessing step): the
store is then the one that evaluation wrote to. A resolved version whose directory no
longer holds the registered bytes (digest) is refused: a registry reference never reads
another model than the one registered.

How the registry is laid out in MLMD's tables (its writer keeps to this):

* a ``registered_model`` context per name; its custom properties ``alias.<alias>`` (INT:
  the version the alias points to) and ``latest_version`` (INT);
* a ``model_version`` artifact per version, named ``NAME/VERSION`` (its ``uri`` the
  reference ``registry:NAME/VERSION``), properties ``model_name``, ``version``,
  ``model_uri`` (the model directory; relative to the store's folder when the model lies
  under it, ``stored_model_uri``), ``digest``, ``model_type``, ...
"""
from __future__ import annotations

import dataclasses
import os
import re
import sqlite3

from mlbatch import storage
from mlbatch.artifacts.manifest import ArtifactError, read_manifest
from mlbatch.artifacts.model_evaluation import registry_path

REF_PREFIX = "registry:"
ENV = "MLBATCH_REGISTRY"
MODEL_CONTEXT = "registered_model"
VERSION_TYPE = "model_version"
ALIAS_PREFIX = "alias."
LATEST = "latest_version"
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_.-]*"
_REF = re.compile(rf"^registry:(?P<name>{NAME_PATTERN})(?:@(?P<alias>{NAME_PATTERN})"
                  r"|/(?P<version>[0-9]+))$")
_CONTEXT_KIND, _ARTIFACT_KIND = 2, 1  # MLMD Type.type_kind


class RegistryError(ArtifactError):
    """A registry reference cannot be resolved (the message names the reference and why)."""


@dataclasses.dataclass(frozen=True)
class RegisteredVersion:
    """One registered model version, as a reference resolved to it."""
    name: str
    version: int
    uri: str
    digest: str
    model_type: str
    alias: str | None  # the alias the reference named, if any
    store: str  # the registry store's path

    def record(self) -> dict:
        """What a consumer records beside its ``model`` input (lineage)."""
        return {"name": self.name, "version": self.version, "digest": self.digest,
                "alias": self.alias, "store": self.store}


def is_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REF_PREFIX)


def parse_ref(ref: str) -> tuple[str, str | None, int | None]:
    """(name, alias, version) of ``registry:NAME@ALIAS`` or ``registry:NAME/VERSION``."""
    m = _REF.match(ref)
    if not m:
        raise RegistryError(f"{ref!r} is no registry reference: write registry:NAME@ALIAS "
                            "or registry:NAME/VERSION (names: letters, digits, _ . -)")
    version = m.group("version")
    return m.group("name"), m.group("alias"), int(version) if version else None


def store_path(registry: str | None) -> str:
    """The registry store's local path: ``registry`` (a SQLite file, or a committed
    ``model_evaluation`` directory: the store it used), else ``$MLBATCH_REGISTRY``."""
    value = registry or os.environ.get(ENV)
    if not value:
        raise RegistryError(f"no registry store: pass --registry or set {ENV}")
    if storage.is_remote(value):
        raise RegistryError(f"the registry store must be a local file, got {value}")
    if os.path.isdir(value):
        m = read_manifest(value, "model_evaluation")
        value = registry_path(m.root, m.body["registry"])
    if not os.path.isfile(value):
        raise RegistryError(f"registry store {value} does not exist")
    return os.path.abspath(value)


def stored_model_uri(model_uri: str, store: str) -> str:
    """What the store records as a version's directory: relative to the store's folder
    when the model lies under it (a run's own ``RUN/lineage.sqlite`` and ``RUN/xgboost``:
    the run directory can move), else the URI as it is."""
    if storage.is_remote(model_uri):
        return model_uri
    base = os.path.dirname(os.path.abspath(store))
    model = os.path.abspath(model_uri)
    if os.path.commonpath([base, model]) != base:
        return model_uri
    return os.path.relpath(model, base)


def model_uri_of(recorded: str, store: str) -> str:
    """A version's directory from what the store recorded (``stored_model_uri``)."""
    if storage.is_remote(recorded) or os.path.isabs(recorded):
        return recorded
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(store)), recorded))


def _one(db: sqlite3.Connection, sql: str, args: tuple) -> tuple | None:
    return db.execute(sql, args).fetchone()


def _alias_version(db: sqlite3.Connection, ref: str, name: str, alias: str) -> int:
    ctx = _one(db, "SELECT c.id FROM Context c JOIN Type t ON t.id = c.type_id WHERE "
               "t.name = ? AND t.type_kind = ? AND c.name = ?", (MODEL_CONTEXT, _CONTEXT_KIND,
                                                                  name))
    if ctx is None:
        raise RegistryError(f"{ref}: no model named {name!r} is registered")
    row = _one(db, "SELECT int_value FROM ContextProperty WHERE context_id = ? AND name = ?",
               (ctx[0], ALIAS_PREFIX + alias))
    if row is None or row[0] is None:
        raise RegistryError(f"{ref}: model {name!r} has no alias {alias!r}")
    return int(row[0])


def _version_row(db: sqlite3.Connection, ref: str, name: str, version: int) -> dict:
    art = _one(db, "SELECT a.id FROM Artifact a JOIN Type t ON t.id = a.type_id WHERE "
               "t.name = ? AND t.type_kind = ? AND a.name = ?",
               (VERSION_TYPE, _ARTIFACT_KIND, f"{name}/{version}"))
    if art is None:
        raise RegistryError(f"{ref}: model {name!r} has no version {version}")
    props = dict(db.execute("SELECT name, COALESCE(string_value, int_value) FROM "
                            "ArtifactProperty WHERE artifact_id = ?", (art[0],)).fetchall())
    return props


def resolve(ref: str, registry: str | None = None) -> RegisteredVersion:
    """The version ``ref`` names in the store (see ``store_path``), its directory checked
    to still hold the registered bytes."""
    name, alias, version = parse_ref(ref)
    path = store_path(registry)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            if alias is not None:
                version = _alias_version(db, ref, name, alias)
            row = _version_row(db, ref, name, version)
        finally:
            db.close()
    except sqlite3.Error as e:
        raise RegistryError(f"{ref}: cannot read the registry store {path}: {e}") from e
    found = RegisteredVersion(name, int(version), model_uri_of(row["model_uri"], path),
                              row["digest"],
                              row.get("model_type", ""), alias, path)
    try:
        current = read_manifest(found.uri).digest
    except ArtifactError as e:
        raise RegistryError(f"{ref} is {name} version {version} at {found.uri}, which "
                            f"cannot be read: {e}") from e
    if current != found.digest:
        raise RegistryError(f"{ref} is {name} version {version} at {found.uri} with digest "
                            f"{found.digest}, but that directory now holds {current}: "
                            "it was replaced after registration")
    return found


def resolve_model_arg(value: str, registry: str | None = None
                      ) -> tuple[str, RegisteredVersion | None]:
    """(model directory, the registered version or None): a ``--model`` value that is a
    directory passes through; a registry reference is resolved."""
    if not is_ref(value):
        return value, None
    found = resolve(value, registry)
    return found.uri, found
