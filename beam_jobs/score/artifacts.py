"""After the scoring pipeline: counts reconciled, metrics, summary.json and the commit.

Everything is read back from what the pipeline wrote (Parquet footers, the counts it
summed), so the manifest describes exactly the files in the output.
"""
from __future__ import annotations

import collections
import logging

import numpy as np
import pyarrow.compute as pc

from beam_jobs.common import deadletter
from beam_jobs.common.readback import parquet_parts, read_parts
from beam_jobs.score.pipeline import SUMMARY
from mlbatch import metrics, storage
from mlbatch.artifacts import ArtifactWriter, read_json, write_json
from mlbatch.artifacts import predictions as contract
from mlbatch.artifacts.models import Model
from mlbatch.schema import DatasetSchema

LOGGER = logging.getLogger(__name__)
TOP_REASONS = 10


def stages(counts: dict, schema: DatasetSchema) -> tuple[dict, dict]:
    """(per-table counts, the checks that must all hold). The main table's dead letters
    are its unreadable/invalid records plus the valid rows outside the schema's filters."""
    c = lambda k: int(counts.get(k, 0))  # noqa: E731
    tables, checks = {}, {}
    for name in schema.tables:
        t = {"read": c(f"{name}_read"), "lines": c(f"{name}_lines"), "valid": c(f"{name}_valid"),
             "dead_letter": c(f"{name}_dead_letter")}
        if name == schema.main:
            t.update(filtered=c("filtered"), prepared=c("prepared"), scored=c("scored"))
            checks[f"{name}: read == valid + invalid"] = (
                t["read"] == t["valid"] + t["dead_letter"] - t["filtered"])
            checks[f"{name}: valid == prepared + filtered"] = (
                t["valid"] == t["prepared"] + t["filtered"])
            checks[f"{name}: prepared == scored"] = t["prepared"] == t["scored"]
            checks["read == scored + dead_letter"] = t["read"] == t["scored"] + t["dead_letter"]
        else:
            t["duplicate_keys_dropped"] = c(f"{name}_duplicate_keys_dropped")
            checks[f"{name}: read == valid + dead_letter"] = (
                t["read"] == t["valid"] + t["dead_letter"])
        tables[name] = t
    return tables, checks


def _written(root: str, main: str, num_classes: int = 0) -> tuple[int, int, dict, list]:
    """(prediction rows, main-table dead letters, metrics inputs, top reasons), read back;
    a multiclass model's (``num_classes`` > 0) scores as [rows, K]."""
    score = "scores" if num_classes else "prediction"
    preds = read_parts(parquet_parts(root, contract.DIR), [score, "label"])
    dead = read_parts(parquet_parts(root, deadletter.DEAD_LETTER), ["table", "reason"])
    n_pred = preds.num_rows if preds is not None else 0
    main_dead = 0
    reasons: list = []
    if dead is not None and dead.num_rows:
        is_main = pc.equal(dead.column("table"), main)
        main_dead = int(pc.sum(is_main).as_py() or 0)
        counter = collections.Counter(zip(dead.column("table").to_pylist(),
                                          dead.column("reason").to_pylist()))
        reasons = [{"table": t, "reason": r, "count": n}
                   for (t, r), n in counter.most_common(TOP_REASONS)]
    labelled = {}
    if preds is not None and preds.num_rows:
        has = pc.is_valid(preds.column("label"))
        scores = preds.column(score).filter(has)
        labelled = {"labels": preds.column("label").filter(has).to_numpy(),
                    "scores": (np.array(scores.to_pylist(), np.float64)
                               .reshape(len(scores), num_classes)
                               if num_classes else scores.to_numpy())}
    return n_pred, main_dead, labelled, reasons


def finalize(writer: ArtifactWriter, schema: DatasetSchema, model: Model,
             transform_digest: str, timings: dict) -> dict:
    """Completes summary.json; commits the artifact when every count reconciles (with
    what was written, too). Returns the summary; its "failure" is None when committed,
    else the reason (recorded in the pending marker; nothing committed)."""
    root = writer.root
    path = storage.join(root, SUMMARY)
    summary = read_json(path)
    tables, checks = stages(summary["counts"], schema)
    main = tables[schema.main]
    n_pred, main_dead, labelled, reasons = _written(root, schema.main, len(model.classes))
    checks["predictions/ rows == scored"] = n_pred == main["scored"]
    checks[f"dead_letter/ rows of {schema.main} == dead_letter"] = main_dead == main["dead_letter"]
    m = {"rows_read": main["read"], "rows_scored": main["scored"],
         "rows_dead_letter": main["dead_letter"],
         "rows_labelled": int(len(labelled.get("labels", ())))}
    m.update(metrics.labelled_quality(model.task, labelled.get("labels", np.zeros(0)),
                     labelled.get("scores", np.zeros(0))))
    failed = [k for k, ok in checks.items() if not ok]
    summary.update(stages={"read": main["read"], "scored": main["scored"],
                           "dead_letter": main["dead_letter"]},
                   tables=tables, checks=checks, reconciled=not failed, metrics=m,
                   dead_letter_reasons=reasons, model={"uri": model.uri, "type": model.type,
                                                       "digest": model.digest},
                   transform_digest=transform_digest,
                   failure=f"counts do not reconcile: {failed} (see {path})" if failed else None)
    write_json(path, summary)  # digested: no wall-clock time (the manifest's timings hold it)
    summary["timings"] = timings
    if failed:
        writer.fail(summary["failure"])
        return summary
    for table, source, _records in summary["files"]:
        writer.input_file(f"raw:{table}", source)
    writer.metrics.update(m)
    writer.timings.update(timings)
    writer.commit(rows={contract.DIR: main["scored"], deadletter.DEAD_LETTER: main["dead_letter"]},
                  body={"task": model.task, "label": model.label, "model_type": model.type,
                        "model_digest": model.digest, "transform_digest": transform_digest,
                        "dir": contract.DIR, "vertex_dir": contract.VERTEX_DIR,
                        "counts": {"read": main["read"], "scored": main["scored"],
                                   "dead_letter": main["dead_letter"]},
                        **({"classes": list(model.classes)} if model.classes else {})})
    return summary
