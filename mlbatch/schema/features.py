"""The `features:` section of a schema: numeric, bucket, vocabulary, hash and cross
features over the prepared columns."""
from __future__ import annotations

from mlbatch.config import shorten
from mlbatch.schema import fields as f
from mlbatch.schema.specs import (FEATURE_TYPES, SCALES, BucketFeature, CrossFeature, HashFeature,
                                  NumericFeature, VocabFeature)

SECTION = {"numeric", "buckets", "vocabularies", "hashes", "crosses", "cross_rare_threshold",
           "cross_max_rare_row_share", "cross_max_collision_share"}


def _column(where: str, col, available: dict[str, str], numeric_only: bool, kind: str) -> str:
    if not isinstance(col, str) or col not in available:
        raise f.err(f"{where}.column", f"unknown column {shorten(col)} (not raw, joined or derived)")
    t = available[col]
    if t not in FEATURE_TYPES:
        raise f.err(f"{where}.column", f"{shorten(col)} is a {t} column: derive a number from it "
                                       f"(e.g. hour({col}), day_of_week({col}))")
    if numeric_only and t == "string":
        raise f.err(f"{where}.column", f"{shorten(col)} is a string column; {kind} needs numbers")
    return col


def _fill(where: str, v):
    if v != "mean" and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise f.err(f"{where}.fill", f"must be 'mean' or a number, got {shorten(v)}")
    return v if v == "mean" else f.number(f"{where}.fill", v)


def _drift(where: str, raw: dict) -> dict:
    """The optional per-feature ``drift_threshold`` (a distance in [0, 1])."""
    if raw.get("drift_threshold") is None:
        return {}
    return {"drift_threshold": f.share(f"{where}.drift_threshold", raw["drift_threshold"])}


def _numeric(where: str, raw: dict) -> NumericFeature:
    scale = raw.get("scale", "z_score")
    if not isinstance(scale, str) or scale not in SCALES:
        raise f.err(f"{where}.scale", f"{shorten(scale)} not in {sorted(SCALES)}")
    return NumericFeature(column=raw["column"], scale=scale,
                          fill=_fill(where, raw.get("fill", "mean")), **_drift(where, raw))


def _bucket(where: str, raw: dict) -> BucketFeature:
    return BucketFeature(column=raw["column"], fill=_fill(where, raw.get("fill", "mean")),
                         num_buckets=f.integer(f"{where}.num_buckets", raw["num_buckets"], 2,
                                                   f.MAX_BUCKETS),
                         **_drift(where, raw))


def _vocab(where: str, raw: dict) -> VocabFeature:
    opt = {k: f.integer(f"{where}.{k}", raw[k], 1) for k in ("top_k", "frequency_threshold")
           if raw.get(k) is not None}
    return VocabFeature(column=raw["column"], **opt, num_oov_buckets=f.integer(
        f"{where}.num_oov_buckets", raw.get("num_oov_buckets", 1), 1, f.MAX_BUCKETS),
        **_drift(where, raw))


def _hash(where: str, raw: dict) -> HashFeature:
    return HashFeature(column=raw["column"],
                       hash_buckets=f.integer(f"{where}.hash_buckets", raw["hash_buckets"], 1,
                                              f.MAX_BUCKETS),
                       **_drift(where, raw))


KINDS = {  # kind -> (builder, allowed fields, required fields, numeric columns only)
    "numeric": (_numeric, {"column", "scale", "fill", "drift_threshold"}, {"column"}, True),
    "buckets": (_bucket, {"column", "num_buckets", "fill", "drift_threshold"},
                {"column", "num_buckets"}, True),
    "vocabularies": (_vocab, {"column", "top_k", "frequency_threshold", "num_oov_buckets",
                              "drift_threshold"}, {"column"}, False),
    "hashes": (_hash, {"column", "hash_buckets", "drift_threshold"},
               {"column", "hash_buckets"}, False),
}


def _items(feats: dict, kind: str, available: dict[str, str]) -> tuple:
    build, allowed, required, numeric_only = KINDS[kind]
    raw = feats.get(kind) or []
    if not isinstance(raw, list):
        raise f.err(f"features.{kind}", f"expected a list, got {type(raw).__name__}")
    out = []
    for i, item in enumerate(raw):
        where = f"features.{kind}[{i}]"
        f.check_keys(where, item, allowed, required)
        _column(where, item["column"], available, numeric_only, kind)
        out.append(build(where, item))
    return tuple(out)


def _cross(where: str, c, available: dict[str, str], bucket_names: set[str]) -> CrossFeature:
    f.check_keys(where, c, {"name", "columns", "hash_buckets", "drift_threshold"},
                 {"name", "columns", "hash_buckets"})
    name = f.string(f"{where}.name", c["name"])
    cols = f.names(f"{where}.columns", c["columns"])
    if not 2 <= len(cols) <= 3:
        raise f.err(f"{where}.columns", f"a cross takes 2 or 3 columns, got {len(cols)}")
    for col in cols:
        if col in bucket_names:
            continue
        if col not in available:
            raise f.err(f"{where}.columns", f"cross {shorten(name)} uses missing column {shorten(col)} "
                                            f"(not raw, joined, derived or a bucket feature)")
        if available[col] == "float64":
            raise f.err(f"{where}.columns", f"{shorten(col)} is a float column: cross its bucket "
                                            f"feature ({col}_bucket) instead")
        if available[col] not in FEATURE_TYPES:
            raise f.err(f"{where}.columns", f"{shorten(col)} is a {available[col]} column")
    return CrossFeature(cross=name, columns=cols,
                        hash_buckets=f.integer(f"{where}.hash_buckets", c["hash_buckets"], 2,
                                              f.MAX_BUCKETS),
                        **_drift(where, c))


def load_features(feats, available: dict[str, str]) -> dict:
    """The DatasetSchema fields of the `features:` section."""
    f.check_keys("features", feats, SECTION)
    out = {kind: _items(feats, kind, available) for kind in KINDS}
    bucket_names = {b.name for b in out["buckets"]}
    crosses = feats.get("crosses") or []
    if not isinstance(crosses, list):
        raise f.err("features.crosses", f"expected a list, got {type(crosses).__name__}")
    out["crosses"] = tuple(_cross(f"features.crosses[{i}]", c, available, bucket_names)
                           for i, c in enumerate(crosses))
    for key in ("cross_max_rare_row_share", "cross_max_collision_share"):
        if key in feats:
            out[key] = f.share(f"features.{key}", feats[key])
    out["cross_rare_threshold"] = f.integer("features.cross_rare_threshold",
                                            feats.get("cross_rare_threshold", 10), 1)
    return out
