"""The pipeline's ``on_alert`` command: run once for each step that ran and committed an
alert record (a monitor breach), with that record as JSON on stdin, the pipeline and
step added. Never through a shell; its exit status and first error line are kept in the
step's key figures (``alert``), and a failing command fails nothing else."""
from __future__ import annotations

import json
import logging
import subprocess

from mlbatch.artifacts.base import ArtifactError, read_manifest
from mlbatch.artifacts.monitor import TYPE as MONITOR, load_alert

LOGGER = logging.getLogger(__name__)
TIMEOUT_S = 60.0


def _alert_of(output: str) -> dict | None:
    try:
        if read_manifest(output).type != MONITOR:
            return None
        return load_alert(output)
    except ArtifactError as e:
        LOGGER.warning("%s: no alert read (%s)", output, e)
        return None


def send(on_alert: tuple[str, ...], pipeline: str, step: str, output: str) -> str | None:
    """Runs ``on_alert`` when ``output`` holds an alert; what happened ("sent", "exit N:
    ...") or None when there was nothing to send."""
    alert = _alert_of(output)
    if alert is None or not on_alert:
        return None
    payload = json.dumps({"pipeline": pipeline, "step": step, **alert}, sort_keys=True)
    try:
        done = subprocess.run(list(on_alert), input=payload.encode(), capture_output=True,
                              timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        LOGGER.error("on_alert %s for step %s: %s", on_alert[0], step, e)
        return f"failed: {e}"
    if done.returncode != 0:
        line = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        LOGGER.error("on_alert for step %s: exit %d %s", step, done.returncode, line[0])
        return f"exit {done.returncode}: {line[0]}".rstrip(": ")
    LOGGER.info("on_alert for step %s: sent (%d breached)", step, len(alert.get("breached", [])))
    return "sent"
