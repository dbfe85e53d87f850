"""Results of a finished (or resumed) experiment: table, best params, best model."""
from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from mlbatch import storage
from mlbatch.artifacts import write_json

logger = logging.getLogger(__name__)

RESULTS_TABLE = "results"  # .parquet and .csv
FAILURES_FILE = "trial_failures.jsonl"  # in the experiment dir, one line per failed attempt
STOPS_FILE = "scheduler_stops.jsonl"  # in the experiment dir, trials ASHA stopped
BEST_PARAMS = "best_params.json"
BEST_DIR = "best"
TRAIN_CHECKPOINT_KEY = "checkpoint_path"  # ray.tune.integration.ray_train.CHECKPOINT_PATH_KEY
_TUNE_INTERNAL = {"timestamp", "checkpoint_dir_name", "done", "training_iteration",
                  "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname",
                  "node_ip", "time_since_restore", "iterations_since_restore", "config",
                  TRAIN_CHECKPOINT_KEY}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _trial_id(result) -> str:
    tid = (result.metrics or {}).get("trial_id")
    return tid or Path(result.path).name.removeprefix("trial_")


def results_table(results, metric: str, mode: str, logs: Path) -> pd.DataFrame:
    """One row per trial; ``logs``: the driver's per-trial logs (failures, stops)."""
    stopped = {r["trial_id"]: r["iteration"] for r in _read_jsonl(logs / STOPS_FILE)}
    failures: dict[str, int] = {}
    for rec in _read_jsonl(logs / FAILURES_FILE):
        failures[rec["trial_id"]] = max(failures.get(rec["trial_id"], 0), rec["num_failures"])
    rows = []
    for r in results:
        m, tid = r.metrics or {}, _trial_id(r)
        history = r.metrics_dataframe
        best = None
        if history is not None and metric in history and history[metric].notna().any():
            best = float(history[metric].min() if mode == "min" else history[metric].max())
        row = {"trial_id": tid, "status": "ERROR" if r.error else "TERMINATED",
               "end_reason": ("error" if r.error else
                              "scheduler_stopped" if tid in stopped else "completed"),
               "iterations": m.get("training_iteration", 0),
               "reported_iterations": 0 if history is None else len(history),
               metric: m.get(metric), f"best_{metric}": best,
               "num_failures": failures.get(tid, 0),
               "error": (str(r.error).strip().splitlines() or [""])[-1][:300] if r.error else None,
               "time_total_s": m.get("time_total_s")}
        row.update({f"config/{k}": v for k, v in (r.config or {}).items()})
        row.update({k: v for k, v in m.items() if k not in _TUNE_INTERNAL and k not in row
                    and isinstance(v, (int, float)) and not isinstance(v, bool)})
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table) and table[f"best_{metric}"].notna().any():
        table = table.sort_values(f"best_{metric}", ascending=(mode == "min"),
                                  na_position="last")
    return table.reset_index(drop=True)


def write(results, plugin: ModuleType, output: str, exp: str, logs: Path, *, features: str
          ) -> dict[str, Any]:
    """Writes results.parquet/.csv, best_params.json and best/ (plug-in's export_best,
    a committed model artifact with lineage to ``features``) into ``output`` (any URI)."""
    metric, mode = plugin.METRIC, plugin.MODE
    table = results_table(results, metric, mode, logs)
    parquet = io.BytesIO()
    table.to_parquet(parquet, index=False)
    storage.write_bytes(storage.join(output, f"{RESULTS_TABLE}.parquet"), parquet.getvalue())
    storage.write_text(storage.join(output, f"{RESULTS_TABLE}.csv"), table.to_csv(index=False))
    summary: dict[str, Any] = {
        "experiment": exp, "trials": len(table),
        "errored": int((table["status"] == "ERROR").sum()) if len(table) else 0,
        "scheduler_stopped": int((table["end_reason"] == "scheduler_stopped").sum())
        if len(table) else 0}
    try:
        best = results.get_best_result(metric, mode, scope="all", filter_nan_and_inf=True)
    except RuntimeError as e:  # no trial reported the metric
        logger.error("no best trial: %s", e)
        summary["best"] = None
        return summary
    history = best.metrics_dataframe
    value = history[metric].min() if mode == "min" else history[metric].max()
    summary["best"] = {"trial_id": _trial_id(best), "config": best.config,
                       metric: None if math.isnan(value) else float(value),
                       "iterations": best.metrics.get("training_iteration")}
    write_json(storage.join(output, BEST_PARAMS), summary["best"])
    checkpoint = best.checkpoint or _reported_checkpoint(best, exp)
    if checkpoint is not None:
        best_dir = storage.join(output, BEST_DIR)
        digest = plugin.export_best(checkpoint, best_dir, features=features)
        summary["best"]["exported_to"] = best_dir
        summary["best"]["model_digest"] = digest
    logger.info("best trial %s: %s=%s config=%s", summary["best"]["trial_id"], metric,
                summary["best"][metric], best.config)
    return summary


def _reported_checkpoint(result, exp: str):
    """The checkpoint of a trial that trains with Ray Train V2: Tune gets its path only,
    as ``checkpoint_path`` in the metrics (``ray.tune.integration.ray_train``), in the
    experiment's file system."""
    from ray import tune

    path = (result.metrics or {}).get(TRAIN_CHECKPOINT_KEY)
    if not path:
        return None
    return tune.Checkpoint(path, filesystem=storage.locate(exp).fs)


def commit(writer, summary: dict[str, Any], plugin: ModuleType, job: str, run_name: str) -> None:
    """Commits the output directory as a ``tune_run`` artifact (artifact.json last)."""
    best = summary.get("best")
    writer.metrics.update({k: summary[k] for k in ("trials", "errored", "scheduler_stopped")})
    if best is not None:
        writer.metrics[f"best_{plugin.METRIC}"] = best[plugin.METRIC]
    model = None
    if best is not None and best.get("model_digest"):
        model = {"dir": BEST_DIR, "type": f"{job}_model", "digest": best["model_digest"]}
    writer.commit(digest_excludes=(f"{run_name}/*",), body={
        "job": job, "metric": plugin.METRIC, "mode": plugin.MODE,
        "results": f"{RESULTS_TABLE}.parquet", "results_csv": f"{RESULTS_TABLE}.csv",
        "experiment": run_name, "trials": summary["trials"],
        "best": None if best is None else {
            "trial_id": best["trial_id"], "config": best["config"],
            "metric": best[plugin.METRIC], "iterations": best["iterations"],
            "params_file": BEST_PARAMS, "model": model}})
