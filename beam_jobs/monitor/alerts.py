"""The run's outcome beyond drift.json: its rows of the drift history (carried from
``--history`` and extended) and, on a breach, the alert record ``alert.json`` that the
pipeline runner hands to the pipeline's ``on_alert`` command on stdin."""
from __future__ import annotations

from mlbatch.artifacts.drift_history import HistoryRow, check_new_period, history_rows
from mlbatch.artifacts.monitor import ALERT

__all__ = ["ALERT", "alert_document", "check_new_period", "history"]


def history(doc: dict, previous: list[HistoryRow], *, period: str, run: str) -> list[HistoryRow]:
    """The carried rows, then this run's (raises ArtifactError when the period is there)."""
    check_new_period(previous, period, doc["mode"])
    return [*previous, *history_rows(doc, period=period, run=run)]


def alert_document(doc: dict, *, period: str, run: str, exit_status: int) -> dict:
    """What breached, with the numbers that made it a breach."""
    rows = [r for r in history_rows(doc, period=period, run=run) if r.verdict == "breach"]
    skew = doc["transform_skew"]
    return {"alert": "monitor breach", "period": period, "mode": doc["mode"], "run": run,
            "baseline": doc["baseline"], "baseline_digest": doc["baseline_digest"],
            "against": doc["against"], "exit_status": exit_status,
            "breached": [{k: v for k, v in r.to_dict().items()
                          if k in ("stage", "name", "metric", "distance", "threshold",
                                   "null_p99", "n_reference", "n_current")} for r in rows],
            "transform_skew": ({k: skew[k] for k in ("sampled", "missing", "mismatches")}
                               if skew["mismatches"] or skew["missing"] else None)}
