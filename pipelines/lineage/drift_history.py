"""The drift history in the lineage store: table ``DriftHistory``, one row per
comparison (feature, label, prediction, attribution) of each recorded monitor run, the
rows of its ``history.json`` that the run itself added (carried rows belong to the run
that measured them). Kept beside MLMD's tables, not among them: MLMD has no table for
measurements, and ``schema.TABLES`` stays MLMD's list. Recording a run twice replaces
its rows with the same values."""
from __future__ import annotations

import dataclasses

from mlbatch.artifacts.base import Manifest
from mlbatch.artifacts.drift_history import HistoryRow, load_history
from pipelines.lineage.store import LineageStore

TABLE = "DriftHistory"
_FIELDS = tuple(f.name for f in dataclasses.fields(HistoryRow))
DDL = f"""CREATE TABLE IF NOT EXISTS `{TABLE}` (
  `execution_id` INT NOT NULL,
  `period` TEXT NOT NULL, `mode` TEXT NOT NULL, `against` TEXT, `run` TEXT NOT NULL,
  `stage` TEXT NOT NULL, `name` TEXT NOT NULL, `metric` TEXT NOT NULL,
  `distance` REAL NOT NULL, `threshold` REAL NOT NULL, `null_p99` REAL NOT NULL,
  `n_reference` INT NOT NULL, `n_current` INT NOT NULL, `verdict` TEXT NOT NULL,
  PRIMARY KEY (`run`, `period`, `mode`, `stage`, `name`))"""


def put_history(store: LineageStore, execution_id: int, m: Manifest) -> int:
    """The monitor artifact's own history rows, recorded for ``execution_id``; how many
    (0 for an artifact that keeps no history)."""
    if "history" not in m.body:
        return 0
    rows = [r for r in load_history(m.root) if r.run == m.root]
    columns = ", ".join(f"`{c}`" for c in ("execution_id", *_FIELDS))
    marks = ", ".join("?" * (len(_FIELDS) + 1))
    with store.transaction():
        store._q(DDL)
        for r in rows:
            store._q(f"INSERT OR REPLACE INTO `{TABLE}` ({columns}) VALUES ({marks})",
                     (execution_id, *(getattr(r, f) for f in _FIELDS)))
    return len(rows)


def get_history(store: LineageStore, *, name: str | None = None) -> list[HistoryRow]:
    """Every recorded row (or one comparison's: ``name``), by period, then stage and name."""
    store._q(DDL)
    where, args = ("WHERE `name` = ?", (name,)) if name else ("", ())
    rows = store._q(f"SELECT * FROM `{TABLE}` {where} ORDER BY `period`, `mode`, `stage`, "
                    "`name`", args)
    return [HistoryRow(**{f: r[f] for f in _FIELDS}) for r in rows]
