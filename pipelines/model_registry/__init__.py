"""The model registry (names, versions, aliases, rollback) and the blessing step.

``ModelRegistry(LineageStore(path))`` writes and lists it (``store``); ``python -m
pipelines.model_registry`` is its CLI; ``python -m pipelines.model_registry.bless`` is
the evaluation step that blesses or refuses a candidate (``thresholds``, ``evaluate``).
Jobs resolve ``registry:NAME@ALIAS`` through ``mlbatch.artifacts.registry``. See
docs/registry.md.
"""
from pipelines.lineage.queries import register_blessing_lookup
from pipelines.model_registry.store import (ModelRegistry, Version, alias_stack,
                                            blessed_against, blessing_of)

register_blessing_lookup(blessing_of)  # "which model ... blessed against which version"

__all__ = ["ModelRegistry", "Version", "alias_stack", "blessed_against", "blessing_of"]
