"""The Data and Crosses sections: what the feature job read, kept, rejected and built."""
from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.features import (Feature, FeatureSet, load_feature_set, read_rejected,
                                        read_summary, read_vocabulary)
from pipelines.report import figures
from pipelines.report.blocks import Figure, Section, Text, absent, table
from pipelines.report.run import Run, Step

LOGGER = logging.getLogger(__name__)
HIST_BINS = 20
MAX_HIST_PANELS = 24
MAX_RAW_CHARS = 160
TOP_CATEGORIES = 12
MAX_LABEL_CHARS = 12


def main_table(summary: dict) -> str | None:
    """The table whose counts are the summary's stages (the one split into train/eval)."""
    st = summary.get("stages", {})
    for name, t in summary.get("tables", {}).items():
        if all(t.get(k) == st.get(k) for k in ("read", "lines", "valid", "dead_letter")):
            return name
    return None


def count_rows(summary: dict) -> list[list]:
    """Per table: read, valid, dead letters; the main table also excluded/train/eval."""
    st, main = summary.get("stages", {}), main_table(summary)
    return [[name, t["read"], t["valid"], t["dead_letter"],
             *([st.get("excluded"), st.get("train"), st.get("eval")] if name == main
               else [None, None, None])] for name, t in summary.get("tables", {}).items()]


def counts_figure(rows: list[list]) -> bytes:
    names = [r[0] for r in rows]
    parts = {"train": [r[5] or 0 for r in rows], "eval": [r[6] or 0 for r in rows],
             "excluded": [r[4] or 0 for r in rows],
             "valid (side table)": [0 if r[5] is not None else r[2] for r in rows],
             "dead letter": [r[3] for r in rows]}
    return figures.stacked_bars(names, parts, "records per table and outcome",
                                ["#4c72b0", "#dd8452", "#999999", "#55a868", "#c44e52"])


def reason_rows(summary: dict, dead: pa.Table | None) -> list[list]:
    """The most common dead-letter reasons per table with the first record's raw text."""
    raw_at = {}
    if dead is not None and dead.num_rows:
        for r in dead.select(["source", "line", "raw"]).to_pylist():
            raw = r["raw"].decode("utf-8", "replace") if isinstance(r["raw"], bytes) else r["raw"]
            raw_at.setdefault(f"{r['source']}:{r['line']}", raw)
    rows = []
    for name, reasons in summary.get("dead_letter_reasons", {}).items():
        for r in reasons:
            raw = raw_at.get(r["first"]) or ""
            if len(raw) > MAX_RAW_CHARS:
                raw = raw[:MAX_RAW_CHARS] + "…"
            rows.append([name, r["reason"], r["count"], r["first"], raw or None])
    return rows


def excluded_rows(excluded: pa.Table | None, table_name: str | None) -> list[list]:
    """Excluded rows (valid, but unusable: e.g. no label) per reason, most common first,
    with the first such row's example id, in the dead-letter table's columns."""
    if excluded is None or not excluded.num_rows:
        return []
    counts = excluded.group_by("reason").aggregate([("reason", "count"),
                                                    ("example_id", "min")])
    rows = [[table_name or "?", r["reason"], r["reason_count"], r["example_id_min"], None]
            for r in counts.to_pylist()]
    return sorted(rows, key=lambda r: (-r[2], r[1]))


def category_labels(fs: FeatureSet, f: Feature, ids: np.ndarray) -> list[str]:
    """What each id of a categorical feature stands for: the vocabulary's value (ids past
    it: "OOV"), else the id itself (buckets, hashes, crosses)."""
    vocab = read_vocabulary(fs, f)
    out = []
    for i in ids.astype(int):
        label = (vocab[i] if i < len(vocab) else f"OOV {i - len(vocab)}") if vocab else str(i)
        out.append(label if len(label) <= MAX_LABEL_CHARS else label[:MAX_LABEL_CHARS - 1] + "…")
    return out


def join_rows(summary: dict) -> list[list]:
    """Per join of the feature job (summary["joins"]): main rows matched and unmatched,
    lookup rows kept, duplicate keys dropped, lookup rows used and unused."""
    return [[t, j["matched"], j["unmatched"], j["lookup_rows"], j["duplicate_keys_dropped"],
             j["lookup_rows_used"], j["lookup_rows_unused"]]
            for t, j in summary.get("joins", {}).items()]


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(values[np.isfinite(values)], bins=edges)[0]


def _categorical_panel(fs: FeatureSet, f: Feature, a: np.ndarray, b: np.ndarray,
                       ids: np.ndarray, counts: np.ndarray) -> dict:
    """The most common train values and, when there are more, one "other" bar (eval: every
    other value, including ones train never saw)."""
    order = ids[np.argsort(-counts, kind="stable")]
    top, rest = order[:TOP_CATEGORIES], order[TOP_CATEGORIES:]
    if f.transform == "bucketize":  # ordered buckets: keep their order
        top = np.sort(top)
    panel = {"title": f.name, "edges": None, "labels": category_labels(fs, f, top),
             "reference": [int((a == i).sum()) for i in top],
             "current": [int((b == i).sum()) for i in top]}
    if rest.size:
        panel["labels"].append(f"other ({rest.size})")
        panel["reference"].append(int(np.isin(a, rest).sum()))
        panel["current"].append(int(np.isfinite(b).sum()) - sum(panel["current"]))
    return panel


def feature_panels(fs: FeatureSet, train: pa.Table, eval_: pa.Table) -> list[dict]:
    """Train vs eval histograms: numeric in 20 shared bins, categorical by value (the 12
    most common in train, labelled with the vocabulary's values)."""
    panels = []
    for f in fs.features[:MAX_HIST_PANELS]:
        a = train[f.name].to_numpy(zero_copy_only=False).astype(float)
        b = eval_[f.name].to_numpy(zero_copy_only=False).astype(float)
        if f.kind == "numeric":
            both = np.concatenate([a, b])
            both = both[np.isfinite(both)]
            lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
            panels.append({"title": f.name, "edges": edges, "reference": _shares(a, edges),
                           "current": _shares(b, edges)})
        else:
            ids, counts = np.unique(a[np.isfinite(a)], return_counts=True)
            panels.append(_categorical_panel(fs, f, a, b, ids, counts))
    return panels


def stat_rows(fs: FeatureSet, summary: dict, train: pa.Table, eval_: pa.Table) -> list[list]:
    stats = summary.get("train_feature_stats", {})
    rows = []
    for f in fs.features:
        s = stats.get(f.name, {})
        nulls = [t[f.name].null_count / t.num_rows if t.num_rows else None for t in (train, eval_)]
        eval_mean = pc.mean(eval_[f.name]).as_py() if f.kind == "numeric" else None
        rows.append([f.name, f.kind, f.transform, s.get("mean"), eval_mean, s.get("stddev"),
                     s.get("min"), s.get("max"), s.get("distinct", f.cardinality), *nulls])
    return rows


def _reasons_block(fs: FeatureSet, summary: dict):
    """Dead-letter reasons (invalid records) and exclusion reasons (valid rows left out of
    train and eval) in one table."""
    dead = [["dead letter", *r] for r in reason_rows(summary, read_rejected(fs, "dead_letter"))]
    excluded = [["excluded", *r] for r in excluded_rows(
        read_rejected(fs, "excluded", ["example_id", "reason"]), main_table(summary))]
    if not dead and not excluded:
        return Text("No dead letters and no excluded rows: every record read was used.", "ok")
    return table(["outcome", "table", "reason", "records", "first", "raw record"],
                 dead + excluded, "Why records were not used: dead letters (invalid, with the "
                 "first record's raw text) and excluded rows (valid, left out of train and "
                 "eval)" + ("" if dead else "; no dead letters"))


def _features_blocks(step: Step, fs: FeatureSet) -> list:
    summary = read_summary(fs)
    rows = count_rows(summary)
    blocks = [Text(f"Step {step.name}: dataset {summary.get('dataset', '?')}, feature "
                   f"artifact {fs.root}."),
              table(["table", "read", "valid", "dead letter", "excluded", "train", "eval"], rows,
                    "Records per table (read = valid + dead letter; valid = train + eval + "
                    "excluded for the main table)"),
              Figure(f"{step.name}-counts", counts_figure(rows), "records per table",
                     "Every record read, by outcome")]
    if summary.get("joins"):
        blocks.append(table(["join", "matched", "unmatched", "lookup rows", "duplicate keys",
                             "lookup rows used", "unused"], join_rows(summary),
                            "Per join: main rows that found a lookup row or not (unmatched "
                            "rows get their features' fill), lookup rows kept and used"))
    blocks.append(_reasons_block(fs, summary))
    train, eval_ = fs.read_table("train", fs.names), fs.read_table("eval", fs.names)
    blocks.append(table(["feature", "kind", "transform", "train mean", "eval mean", "train std",
                         "train min", "train max", "distinct", "train null share",
                         "eval null share"], stat_rows(fs, summary, train, eval_),
                        "Per-feature statistics (train: the feature job's full pass; eval and "
                        "null shares: the feature Parquet)"))
    panels = feature_panels(fs, train, eval_)
    blocks.append(Figure(f"{step.name}-histograms", figures.hist_grid(panels, ("train", "eval")),
                         "train vs eval histograms per feature",
                         "Train vs eval, share of rows per bin (categorical: the "
                         f"{TOP_CATEGORIES} most common train values, by the vocabulary's "
                         "value; buckets, hashes and crosses by id)"))
    return blocks


def _load(run: Run) -> list[tuple[Step, FeatureSet, str | None]]:
    out = []
    for step in run.of_type("features"):
        try:
            out.append((step, load_feature_set(step.uri, check_columns=False), None))
        except ArtifactError as e:
            LOGGER.warning("features step %s: %s", step.name, e)
            out.append((step, None, str(e)))
    return out


def data_section(run: Run) -> Section:
    loaded = _load(run)
    if not loaded:
        return absent("data", "Data", "no features step")
    blocks = []
    for step, fs, problem in loaded:
        blocks += _features_blocks(step, fs) if fs else [Text(f"{step.name}: {problem}",
                                                               "alert")]
    return Section("data", "Data", tuple(blocks), shown=tuple(s.name for s, _, _ in loaded))


def crosses_section(run: Run) -> Section:
    blocks, shown = [], []
    for step, fs, _ in _load(run):
        crosses = read_summary(fs).get("crosses", {}) if fs else {}
        if not crosses:
            continue
        shown.append(step.name)
        rows = [[name, " × ".join(c.get("columns", [])), c["distinct_values"],
                 c.get("hash_buckets"), c.get("buckets_used"), c.get("bucket_collisions"),
                 c.get("colliding_value_share"), c.get("rare_value_share"),
                 c.get("rare_row_share"), c.get("min_hash_buckets"),
                 "; ".join(c.get("verdicts", [])) or "ok"] for name, c in crosses.items()]
        blocks.append(table(["cross", "columns", "distinct values", "hash buckets",
                             "buckets used", "collisions", "colliding value share",
                             "rare value share", "rare row share", "min hash buckets",
                             "verdict and advice"], rows, f"Crosses of {step.name}"))
    if not blocks:
        return absent("crosses", "Crosses", "no features step with crosses")
    return Section("crosses", "Crosses", tuple(blocks), shown=tuple(shown))
