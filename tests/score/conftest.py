"""Scoring runs shared by a module's tests (one run per model per module)."""
from __future__ import annotations

from pathlib import Path

from beam_jobs.score.__main__ import run


def score(features: Path, model: Path, raw: Path | str, output: Path | str, *extra: str) -> dict:
    """Runs the scoring job in this process (as `python -m beam_jobs.score` does)."""
    return run(["--features", str(features), "--model", str(model), "--input", str(raw),
                "--output", str(output), *extra], save_main_session=False)
