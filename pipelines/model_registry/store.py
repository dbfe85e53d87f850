"""``ModelRegistry``: model names, versions and aliases in a lineage store (MLMD's tables).

Laid out as ``mlbatch.artifacts.registry`` (the one resolver) reads it:

* a ``registered_model`` context per name; custom properties ``latest_version`` and
  ``alias.<alias>`` (the version each alias points to now);
* a ``model_version`` artifact per version, named ``NAME/VERSION``, its uri the reference
  ``registry:NAME/VERSION`` (the model directory keeps its own artifact record):
  ``model_name``, ``version``, ``model_uri``, ``digest``, ``model_type``, ``task``,
  ``features_digest``, ``metrics`` (the model's own eval metrics), ``registered_at``;
* a ``mlbatch.registry.register`` execution per registration: INPUT the model artifact
  (as the lineage records it, so its lineage is one walk away), OUTPUT the version;
* a ``mlbatch.registry.alias`` execution per alias move (``set``, ``bless``, ``rollback``):
  ``model_name``, ``alias``, ``version``, ``previous``, ``baseline`` (the blessed version a
  blessing compared against), ``evaluation`` (its ``model_evaluation`` artifact),
  ``reason``; INPUT the version it points to. The moves are the alias's history:
  ``rollback`` undoes the last move that a rollback has not undone yet.

Every write is one transaction (SQLite ``BEGIN IMMEDIATE``): versions are numbered 1, 2,
... per name with no gap or repeat, also with several writers.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import re
from typing import Any

from mlbatch.artifacts.manifest import ArtifactError
from mlbatch.artifacts.models import load_model
from mlbatch.artifacts.registry import (ALIAS_PREFIX, LATEST, MODEL_CONTEXT, NAME_PATTERN,
                                        REF_PREFIX, VERSION_TYPE, RegistryError,
                                        model_uri_of, stored_model_uri)
from pipelines.lineage.record import put_manifest_artifact
from pipelines.lineage.schema import EventType, ExecutionState, PropertyType
from pipelines.lineage.store import LineageStore

LOGGER = logging.getLogger(__name__)

S, I, STRUCT = PropertyType.STRING, PropertyType.INT, PropertyType.STRUCT
VERSION_PROPERTIES = {"model_name": S, "version": I, "model_uri": S, "digest": S,
                      "model_type": S, "task": S,
                      "features_digest": S, "metrics": STRUCT, "registered_at": S}
REGISTER = "mlbatch.registry.register"
ALIAS = "mlbatch.registry.alias"
ALIAS_PROPERTIES = {"model_name": S, "alias": S, "version": I, "previous": I, "action": S,
                    "baseline": I, "evaluation": S, "reason": S, "at": S}
ACTIONS = ("set", "bless", "rollback")
_NAME = re.compile(rf"^{NAME_PATTERN}$")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise RegistryError(f"{what} {value!r}: letters, digits, _ . - (starting with a letter)")
    return value


@dataclasses.dataclass(frozen=True)
class Version:
    """A registered version as the registry lists it."""
    name: str
    version: int
    uri: str
    digest: str
    model_type: str
    task: str
    features_digest: str | None
    metrics: dict
    registered_at: str
    aliases: tuple[str, ...]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ModelRegistry:
    """The registry in ``store`` (a ``LineageStore``; the caller closes it)."""

    def __init__(self, store: LineageStore):
        self.store = store
        store.put_context_type(MODEL_CONTEXT, {})
        store.put_artifact_type(VERSION_TYPE, VERSION_PROPERTIES)
        store.put_execution_type(REGISTER, {"model_name": S, "version": I, "at": S})
        store.put_execution_type(ALIAS, ALIAS_PROPERTIES)

    # --- reads -------------------------------------------------------------------------
    def _context(self, name: str, *, create: bool = False):
        found = [c for c in self.store.get_contexts(MODEL_CONTEXT) if c.name == name]
        if found:
            return found[0]
        if not create:
            raise RegistryError(f"no model named {name!r} is registered")
        self.store.put_context(MODEL_CONTEXT, check_name(name, "model name"))
        return self._context(name)

    def names(self) -> list[str]:
        return sorted(c.name for c in self.store.get_contexts(MODEL_CONTEXT))

    def aliases(self, name: str) -> dict[str, int]:
        custom = self._context(name).custom_properties
        return {k[len(ALIAS_PREFIX):]: v for k, v in sorted(custom.items())
                if k.startswith(ALIAS_PREFIX) and v is not None}

    def versions(self, name: str) -> list[Version]:
        ctx = self._context(name)
        by_version: dict[int, list[str]] = {}
        for alias, v in self.aliases(name).items():
            by_version.setdefault(v, []).append(alias)
        out = [_version(a, by_version, str(self.store.path))
               for a in self.store.get_artifacts_by_context(ctx.id) if a.type == VERSION_TYPE]
        return sorted(out, key=lambda v: v.version)

    def version(self, name: str, version: int) -> Version:
        for v in self.versions(name):
            if v.version == version:
                return v
        raise RegistryError(f"model {name!r} has no version {version}")

    def get(self, name: str, alias_or_version: str | int) -> Version:
        """A version by number or by alias."""
        if isinstance(alias_or_version, int) or str(alias_or_version).isdigit():
            return self.version(name, int(alias_or_version))
        aliases = self.aliases(name)
        if alias_or_version not in aliases:
            raise RegistryError(f"model {name!r} has no alias {alias_or_version!r} "
                                f"(aliases: {', '.join(aliases) or 'none'})")
        return self.version(name, aliases[alias_or_version])

    def history(self, name: str, alias: str | None = None) -> list[dict]:
        """Every alias move of ``name`` (oldest first), or of one alias."""
        ctx = self._context(name)
        moves = [{"id": e.id, **e.properties} for e in
                 self.store.get_executions_by_context(ctx.id) if e.type == ALIAS]
        return [m for m in moves if alias is None or m["alias"] == alias]

    # --- writes ------------------------------------------------------------------------
    def register(self, name: str, uri: str) -> Version:
        """Registers the committed model at ``uri`` (its next version), or returns the
        version already registered with the same digest."""
        model = load_model(uri)  # the one model contract: committed, a model type
        check_name(name, "model name")
        with self.store.transaction():
            ctx = self._context(name, create=True)
            for v in self.versions(name):
                if v.digest == model.digest:
                    LOGGER.info("%s: already %s version %d", uri, name, v.version)
                    return v
            number = int(ctx.custom_properties.get(LATEST, 0)) + 1
            try:
                features = model.features.get("digest")
            except ArtifactError:  # a model without a recorded features input
                features = None
            at = _now()
            props = {"model_name": name, "version": number,
                     "model_uri": stored_model_uri(model.uri, str(self.store.path)),
                     "digest": model.digest,
                     "model_type": model.type, "task": model.task,
                     "features_digest": features, "metrics": _metrics(model),
                     "registered_at": at}
            version_id = self.store.put_artifact(
                VERSION_TYPE, f"{name}/{number}", f"{REF_PREFIX}{name}/{number}",
                properties={k: v for k, v in props.items() if v is not None})
            model_id = put_manifest_artifact(self.store, model.manifest)
            run = self.store.put_execution(REGISTER, f"{name}/{number}",
                                           state=ExecutionState.COMPLETE,
                                           properties={"model_name": name, "version": number,
                                                       "at": at})
            self.store.put_event(model_id, run, EventType.INPUT, ("model",))
            self.store.put_event(version_id, run, EventType.OUTPUT, ("version",))
            for artifact_id in (model_id, version_id):
                self.store.put_attribution(ctx.id, artifact_id)
            self.store.put_association(ctx.id, run)
            self.store.put_context(MODEL_CONTEXT, name, custom_properties={LATEST: number})
        LOGGER.info("registered %s as %s version %d", model.uri, name, number)
        return self.version(name, number)

    def set_alias(self, name: str, alias: str, version: int, *, action: str = "set",
                  baseline: int | None = None, evaluation: str | None = None,
                  reason: str | None = None) -> dict:
        """Points ``alias`` at ``version`` and records the move; returns the move."""
        check_name(alias, "alias")
        if action not in ACTIONS:
            raise RegistryError(f"unknown alias action {action!r} (one of {ACTIONS})")
        with self.store.transaction():
            ctx = self._context(name)
            target = self.version(name, int(version))
            previous = self.aliases(name).get(alias)
            moves = self.history(name)
            props = {"model_name": name, "alias": alias, "version": target.version,
                     "previous": previous, "action": action, "baseline": baseline,
                     "evaluation": evaluation, "reason": reason, "at": _now()}
            run = self.store.put_execution(
                ALIAS, f"{name}@{alias}#{len(moves) + 1}", state=ExecutionState.COMPLETE,
                properties={k: v for k, v in props.items() if v is not None})
            version_id = self.store.get_artifacts_by_uri(
                f"{REF_PREFIX}{name}/{target.version}")[0].id
            self.store.put_event(version_id, run, EventType.INPUT, ("alias", alias))
            self.store.put_association(ctx.id, run)
            self.store.put_context(MODEL_CONTEXT, name,
                                   custom_properties={ALIAS_PREFIX + alias: target.version})
        LOGGER.info("%s@%s: %s -> %d (%s)", name, alias, previous, target.version, action)
        return {k: v for k, v in props.items() if v is not None}

    def rollback(self, name: str, alias: str = "blessed", *, reason: str | None = None) -> dict:
        """Moves ``alias`` back to where it pointed before its last move not yet undone."""
        with self.store.transaction():
            stack = alias_stack(self.history(name, alias))
            if len(stack) < 2:
                raise RegistryError(f"{name}@{alias}: nothing to roll back to (its history: "
                                    f"{stack or 'never set'})")
            return self.set_alias(name, alias, stack[-2], action="rollback", reason=reason)


def alias_stack(moves: list[dict]) -> list[int]:
    """The versions an alias went through, a rollback undoing the move before it."""
    stack: list[int] = []
    for move in moves:
        if move["action"] == "rollback":
            stack.pop()
        else:
            stack.append(move["version"])
    return stack


def _version(artifact: Any, by_version: dict[int, list[str]], store: str) -> Version:
    p = artifact.properties
    return Version(p["model_name"], p["version"], model_uri_of(p["model_uri"], store),
                   p["digest"],
                   p.get("model_type", ""), p.get("task", ""), p.get("features_digest"),
                   p.get("metrics") or {}, p.get("registered_at", ""),
                   tuple(sorted(by_version.get(p["version"], []))))


def blessed_against(store: LineageStore, name: str, version: int) -> int | None:
    """The version the blessing of ``name`` ``version`` compared it with (None: blessed on
    value thresholds only, as the first model of a name); RegistryError if never blessed."""
    for move in reversed(ModelRegistry(store).history(name, "blessed")):
        if move["version"] == version and move["action"] == "bless":
            return move.get("baseline")
    raise RegistryError(f"{name} version {version} was never blessed by an evaluation")


def blessing_of(store: LineageStore, model: dict) -> dict | None:
    """The lineage query's blessing answer (``pipelines.lineage.queries``) for a model
    artifact node: the registered version with its digest, its aliases, and whether and
    against which version it was blessed (None: not registered in this store)."""
    versions = [a for a in store.get_artifacts(VERSION_TYPE)
                if a.properties.get("digest") == model.get("digest")]
    if not versions:
        return None
    p = versions[-1].properties
    registry = ModelRegistry(store)
    blessings = [m for m in registry.history(p["model_name"], "blessed")
                 if m["version"] == p["version"] and m["action"] == "bless"]
    aliases = [a for a, v in registry.aliases(p["model_name"]).items() if v == p["version"]]
    return {"name": p["model_name"], "version": p["version"],
            "alias": ", ".join(aliases) or None,
            "decision": "blessed" if blessings else "not blessed",
            "blessed_against": blessings[-1].get("baseline") if blessings else None}


def _metrics(model) -> dict:
    """The model's recorded metrics, with ``loss_note`` saying what its eval_loss meant
    when it was recorded before objective_loss existed (``Model.losses``)."""
    note = model.losses["note"]
    return {**model.metrics, "loss_note": note} if note else dict(model.metrics)
