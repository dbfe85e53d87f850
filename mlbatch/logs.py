"""The one logging setup of every command line (jobs, the pipeline runner, scripts):
called only under ``if __name__ == "__main__"`` or in a ``main``, never at import."""
from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: str | int = logging.INFO) -> None:
    """Log records at ``level`` and above to stderr, one format for every job (``level``
    as a name, e.g. a job's ``--log_level``, or a number)."""
    if isinstance(level, str):
        level = level.upper()
    logging.basicConfig(level=level, format=FORMAT)
