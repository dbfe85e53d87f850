"""Fixtures of the artifact end-to-end tests: in tests/conftest.py (emulator, Ray cluster,
connected_gcs)."""
from __future__ import annotations

