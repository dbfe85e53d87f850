"""The model registry (names, versions, aliases, rollback) and the blessing step.

``ModelRegistry(LineageStore(path))`` writes and lists it (``store``); ``python -m
pipelines.model_registry`` is its CLI; ``python -m pipelines.model_registry.bless`` is
the evaluation step that blesses or refuses a candidate (``thresholds``, ``evaluate``).
Jobs resolve ``registry:NAME@ALIAS`` through ``mlbatch.artifacts.registry``. See
docs/registry.md.
"""
from pipelines.model_registry.store import (ModelRegistry, Version, alias_stack,
                                            blessed_against)

__all__ = ["ModelRegistry", "Version", "alias_stack", "blessed_against"]
