"""Loads and validates a dataset schema file (``schemas/<dataset>.yaml``).

The schema is the one place where table columns, joins, the label, the split and the
feature recipe are named; everything else (raw Arrow schema, preprocessing_fn, output
Parquet schema, the feature manifest) is derived from the objects built here.
Every error names the file and the offending field.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

COLUMN_TYPES = ("int64", "float64", "string")
FORMATS = ("csv", "jsonl", "parquet")
SCALES = {"z_score": "z", "scale_0_1": "01"}
LABEL_OPS = (">", ">=", "<", "<=", "==")
TASKS = ("binary_classification", "regression")
DERIVED_FNS = {  # name -> (number of args, output type)
    "floordiv": (2, "int64"),
    "subtract": (2, None),  # type of the first argument
    "day_of_week": (3, "int64"),
}


class SchemaError(ValueError):
    """The schema file is invalid; the message names the field."""


def _err(where: str, msg: str) -> SchemaError:
    return SchemaError(f"{where}: {msg}")


def _check_keys(where: str, raw: dict, allowed: set[str], required: set[str] = frozenset()):
    if not isinstance(raw, dict):
        raise _err(where, f"expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - allowed
    if unknown:
        raise _err(where, f"unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(raw)
    if missing:
        raise _err(where, f"missing required field(s) {sorted(missing)}")


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool = False
    min: float | None = None
    max: float | None = None


@dataclasses.dataclass(frozen=True)
class TableSpec:
    name: str
    path: str
    format: str
    columns: tuple[ColumnSpec, ...]
    null_tokens: tuple[str, ...] = ("",)
    key: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


@dataclasses.dataclass(frozen=True)
class JoinSpec:
    table: str
    on: tuple[str, ...]
    prefix: str


@dataclasses.dataclass(frozen=True)
class DerivedSpec:
    name: str
    fn: str
    args: tuple[Any, ...]


LABEL_TRANSFORMS = (None, "log1p")


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    name: str
    task: str
    column: str
    op: str | None = None
    value: float | None = None
    transform: str | None = None  # regression: None | "log1p"; trainers apply the inverse


@dataclasses.dataclass(frozen=True)
class LimitsSpec:
    """How much bad input a run may absorb before it fails (as BigQuery's
    max_bad_records): past it the job fails, output uncommitted."""
    max_dead_letter_share: float = 0.01  # of the records read, per table
    max_dead_letters: int | None = None  # an absolute cap as well, when set


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    key: tuple[str, ...]
    eval_fraction: float
    salt: str = ""


@dataclasses.dataclass(frozen=True)
class NumericFeature:
    column: str
    scale: str = "z_score"
    fill: Any = "mean"  # "mean" or a number

    @property
    def name(self) -> str:
        return f"{self.column}_{SCALES[self.scale]}"


@dataclasses.dataclass(frozen=True)
class BucketFeature:
    column: str
    num_buckets: int
    fill: Any = "mean"

    @property
    def name(self) -> str:
        return f"{self.column}_bucket"


@dataclasses.dataclass(frozen=True)
class VocabFeature:
    column: str
    top_k: int | None = None
    frequency_threshold: int | None = None
    num_oov_buckets: int = 1

    @property
    def name(self) -> str:
        return f"{self.column}_id"


@dataclasses.dataclass(frozen=True)
class HashFeature:
    column: str
    hash_buckets: int

    @property
    def name(self) -> str:
        return f"{self.column}_hash"


@dataclasses.dataclass(frozen=True)
class CrossFeature:
    cross: str
    columns: tuple[str, ...]
    hash_buckets: int

    @property
    def name(self) -> str:
        return f"cross_{self.cross}"


@dataclasses.dataclass(frozen=True)
class DatasetSchema:
    name: str
    tables: dict[str, TableSpec]
    main: str
    joins: tuple[JoinSpec, ...]
    derived: tuple[DerivedSpec, ...]
    label: LabelSpec
    split: SplitSpec
    numeric: tuple[NumericFeature, ...]
    buckets: tuple[BucketFeature, ...]
    vocabularies: tuple[VocabFeature, ...]
    hashes: tuple[HashFeature, ...]
    crosses: tuple[CrossFeature, ...]
    cross_rare_threshold: int = 10
    source: str = ""
    version: int | str = 1
    limits: LimitsSpec = LimitsSpec()
    cross_max_rare_row_share: float = 0.2  # overcrossed past this share of rare-value rows
    cross_max_collision_share: float = 0.3  # hash_buckets too small past this colliding share

    @property
    def main_table(self) -> TableSpec:
        return self.tables[self.main]

    def prepared_columns(self) -> dict[str, str]:
        """Column name -> type after the joins and derived columns (before tf.Transform)."""
        cols = {c.name: c.type for c in self.main_table.columns}
        for j in self.joins:
            for c in self.tables[j.table].columns:
                if c.name not in j.on:
                    cols[j.prefix + c.name] = c.type
        for d in self.derived:
            n_args, out_type = DERIVED_FNS[d.fn]
            cols[d.name] = out_type or cols[d.args[0]]
        return cols

    @property
    def features(self) -> list:
        return [*self.numeric, *self.buckets, *self.vocabularies, *self.hashes, *self.crosses]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def transform_inputs(self) -> list[str]:
        """Prepared columns the preprocessing_fn reads: the features' sources.

        The label is not among them: it is computed per row in Beam and passed through
        tf.Transform untouched, so serving needs no label input.
        """
        bucket_names = {b.name for b in self.buckets}
        cols: list[str] = []
        for f in self.features:
            sources = f.columns if isinstance(f, CrossFeature) else (f.column,)
            for c in sources:
                if c in bucket_names:
                    c = next(b.column for b in self.buckets if b.name == c)
                if c not in cols:
                    cols.append(c)
        return cols


def _tuple(v) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _load_table(where: str, name: str, raw: dict) -> TableSpec:
    _check_keys(where, raw, {"path", "format", "null_tokens", "columns", "key"},
                {"path", "columns"})
    fmt = raw.get("format") or Path(raw["path"]).suffix.lstrip(".")
    if fmt not in FORMATS:
        raise _err(f"{where}.format", f"{fmt!r} is not one of {FORMATS}")
    if not isinstance(raw["columns"], dict) or not raw["columns"]:
        raise _err(f"{where}.columns", "expected a non-empty mapping of column -> spec")
    columns = []
    for cname, cspec in raw["columns"].items():
        cwhere = f"{where}.columns.{cname}"
        if isinstance(cspec, str):
            cspec = {"type": cspec}
        _check_keys(cwhere, cspec, {"type", "required", "min", "max"}, {"type"})
        if cspec["type"] not in COLUMN_TYPES:
            raise _err(f"{cwhere}.type", f"{cspec['type']!r} is not one of {COLUMN_TYPES}")
        if cspec["type"] == "string" and ("min" in cspec or "max" in cspec):
            raise _err(cwhere, "min/max apply to numeric columns only")
        columns.append(ColumnSpec(name=str(cname), type=cspec["type"],
                                  required=bool(cspec.get("required", False)),
                                  min=cspec.get("min"), max=cspec.get("max")))
    key = _tuple(raw.get("key", ()))
    names = {c.name for c in columns}
    for k in key:
        if k not in names:
            raise _err(f"{where}.key", f"key column {k!r} is not a column of table {name!r}")
    return TableSpec(name=name, path=raw["path"], format=fmt, columns=tuple(columns),
                     null_tokens=tuple(str(t) for t in raw.get("null_tokens", [""])), key=key)


def _load_limits(raw: dict) -> LimitsSpec:
    _check_keys("limits", raw, {"max_dead_letter_share", "max_dead_letters"})
    share = raw.get("max_dead_letter_share", LimitsSpec.max_dead_letter_share)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise _err("limits.max_dead_letter_share", f"must be a share in [0, 1], got {share!r}")
    cap = raw.get("max_dead_letters")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise _err("limits.max_dead_letters", f"must be an integer >= 0, got {cap!r}")
    return LimitsSpec(max_dead_letter_share=float(share), max_dead_letters=cap)


def load_schema(path: str | Path) -> DatasetSchema:
    """Parses and validates a schema file; raises SchemaError naming the bad field."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"schema file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SchemaError(f"{path}: not valid YAML ({e})") from e
    try:
        return _build(raw, str(path))
    except SchemaError as e:
        raise SchemaError(f"{path}: {e}") from None


def _build(raw: dict, source: str) -> DatasetSchema:
    _check_keys("schema", raw, {"name", "version", "tables", "main", "joins", "derived",
                                "label", "split", "features", "limits"},
                {"name", "tables", "main", "label", "split", "features"})
    if not isinstance(raw["tables"], dict) or not raw["tables"]:
        raise _err("tables", "expected a non-empty mapping")
    tables = {n: _load_table(f"tables.{n}", n, t) for n, t in raw["tables"].items()}
    main = raw["main"]
    if main not in tables:
        raise _err("main", f"{main!r} is not a declared table ({sorted(tables)})")
    main_cols = {c.name: c.type for c in tables[main].columns}

    joins = []
    available = dict(main_cols)
    for i, j in enumerate(raw.get("joins") or []):
        where = f"joins[{i}]"
        _check_keys(where, j, {"table", "keys", "prefix"}, {"table", "keys"})
        if j["table"] not in tables or j["table"] == main:
            raise _err(f"{where}.table", f"{j['table']!r} is not a declared lookup table")
        on = _tuple(j["keys"])
        right = tables[j["table"]]
        for k in on:
            if k not in main_cols:
                raise _err(f"{where}.keys", f"{k!r} is not a column of the main table {main!r}")
            if k not in right.column_names:
                raise _err(f"{where}.keys", f"{k!r} is not a column of table {right.name!r}")
        if set(on) != set(right.key):
            raise _err(f"{where}.keys", f"must equal the declared key {list(right.key)} "
                                      f"of table {right.name!r}")
        prefix = j.get("prefix", f"{right.name}_")
        for c in right.columns:
            if c.name not in on:
                if prefix + c.name in available:
                    raise _err(where, f"joined column {prefix + c.name!r} collides")
                available[prefix + c.name] = c.type
        joins.append(JoinSpec(table=right.name, on=on, prefix=prefix))

    derived = []
    for i, d in enumerate(raw.get("derived") or []):
        where = f"derived[{i}]"
        _check_keys(where, d, {"name", "fn", "args"}, {"name", "fn", "args"})
        if d["fn"] not in DERIVED_FNS:
            raise _err(f"{where}.fn", f"{d['fn']!r} is not one of {sorted(DERIVED_FNS)}")
        args = _tuple(d["args"])
        n_args, out_type = DERIVED_FNS[d["fn"]]
        if len(args) != n_args:
            raise _err(f"{where}.args", f"{d['fn']} takes {n_args} arguments, got {len(args)}")
        for a in args:
            if isinstance(a, str) and a not in available:
                raise _err(f"{where}.args", f"unknown column {a!r}")
            if isinstance(a, str) and available[a] == "string":
                raise _err(f"{where}.args", f"column {a!r} is a string; {d['fn']} needs numbers")
        if d["name"] in available:
            raise _err(f"{where}.name", f"{d['name']!r} already exists")
        if not isinstance(args[0], str):
            raise _err(f"{where}.args", "the first argument must be a column")
        available[d["name"]] = out_type or available[args[0]]
        derived.append(DerivedSpec(name=d["name"], fn=d["fn"], args=args))

    lab = raw["label"]
    _check_keys("label", lab, {"name", "task", "column", "op", "value", "transform"},
                {"name", "task", "column"})
    if lab["task"] not in TASKS:
        raise _err("label.task", f"{lab['task']!r} is not one of {TASKS}")
    if lab["column"] not in available or available[lab["column"]] == "string":
        raise _err("label.column", f"{lab['column']!r} is not a numeric column")
    if lab["task"] == "binary_classification" and lab.get("op") not in LABEL_OPS:
        raise _err("label.op", f"a binary label needs op in {LABEL_OPS} and a value")
    if lab.get("transform") not in LABEL_TRANSFORMS:
        raise _err("label.transform", f"{lab['transform']!r} is not one of {LABEL_TRANSFORMS}")
    if lab.get("transform") and lab["task"] != "regression":
        raise _err("label.transform", "a label transform applies to regression labels only")
    label = LabelSpec(name=lab["name"], task=lab["task"], column=lab["column"],
                      op=lab.get("op"), value=lab.get("value"), transform=lab.get("transform"))
    limits = _load_limits(raw.get("limits") or {})

    sp = raw["split"]
    _check_keys("split", sp, {"key", "eval_fraction", "salt"}, {"key", "eval_fraction"})
    for k in _tuple(sp["key"]):
        if k not in available:
            raise _err("split.key", f"unknown column {k!r}")
    if not 0 < float(sp["eval_fraction"]) < 1:
        raise _err("split.eval_fraction", f"must be in (0, 1), got {sp['eval_fraction']}")
    split = SplitSpec(key=_tuple(sp["key"]), eval_fraction=float(sp["eval_fraction"]),
                      salt=str(sp.get("salt", "")))

    feats = raw["features"]
    _check_keys("features", feats, {"numeric", "buckets", "vocabularies", "hashes", "crosses",
                                    "cross_rare_threshold", "cross_max_rare_row_share",
                                    "cross_max_collision_share"})
    cross_shares = {}
    for key in ("cross_max_rare_row_share", "cross_max_collision_share"):
        if key in feats:
            v = feats[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise _err(f"features.{key}", f"must be a share in [0, 1], got {v!r}")
            cross_shares[key] = float(v)

    def items(kind, cls, allowed, required, numeric_only=False):
        out = []
        for i, f in enumerate(feats.get(kind) or []):
            where = f"features.{kind}[{i}]"
            _check_keys(where, f, allowed, required)
            col = f["column"]
            if col not in available:
                raise _err(f"{where}.column", f"unknown column {col!r} (not raw, joined or derived)")
            if numeric_only and available[col] == "string":
                raise _err(f"{where}.column", f"{col!r} is a string column; {kind} needs numbers")
            out.append(cls(**f))
        return tuple(out)

    numeric = items("numeric", NumericFeature, {"column", "scale", "fill"}, {"column"}, True)
    for i, f in enumerate(numeric):
        if f.scale not in SCALES:
            raise _err(f"features.numeric[{i}].scale", f"{f.scale!r} not in {sorted(SCALES)}")
    buckets = items("buckets", BucketFeature, {"column", "num_buckets", "fill"},
                    {"column", "num_buckets"}, True)
    vocabs = items("vocabularies", VocabFeature,
                   {"column", "top_k", "frequency_threshold", "num_oov_buckets"}, {"column"})
    hashes = items("hashes", HashFeature, {"column", "hash_buckets"}, {"column", "hash_buckets"})
    for f in [*numeric, *buckets]:
        if not (f.fill == "mean" or isinstance(f.fill, (int, float))):
            raise _err(f"features ({f.name}).fill", f"must be 'mean' or a number, got {f.fill!r}")
    for f in buckets:
        if int(f.num_buckets) < 2:
            raise _err(f"features.buckets ({f.name})", "num_buckets must be >= 2")
    for f in hashes:
        if int(f.hash_buckets) < 1:
            raise _err(f"features.hashes ({f.name})", "hash_buckets must be >= 1")

    bucket_names = {b.name for b in buckets}
    crosses = []
    for i, c in enumerate(feats.get("crosses") or []):
        where = f"features.crosses[{i}]"
        _check_keys(where, c, {"name", "columns", "hash_buckets"},
                    {"name", "columns", "hash_buckets"})
        cols = _tuple(c["columns"])
        if not 2 <= len(cols) <= 3:
            raise _err(f"{where}.columns", f"a cross takes 2 or 3 columns, got {len(cols)}")
        for col in cols:
            if col in bucket_names:
                continue
            if col not in available:
                raise _err(f"{where}.columns", f"cross {c['name']!r} uses missing column {col!r} "
                                               f"(not raw, joined, derived or a bucket feature)")
            if available[col] == "float64":
                raise _err(f"{where}.columns", f"{col!r} is a float column: cross its bucket "
                                               f"feature ({col}_bucket) instead")
        if int(c["hash_buckets"]) < 2:
            raise _err(f"{where}.hash_buckets", "must be >= 2")
        crosses.append(CrossFeature(cross=c["name"], columns=cols,
                                    hash_buckets=int(c["hash_buckets"])))

    schema = DatasetSchema(
        name=raw["name"], tables=tables, main=main, joins=tuple(joins), derived=tuple(derived),
        label=label, split=split, numeric=numeric, buckets=buckets, vocabularies=vocabs,
        hashes=hashes, crosses=tuple(crosses),
        cross_rare_threshold=int(feats.get("cross_rare_threshold", 10)), source=source,
        version=raw.get("version", 1), limits=limits, **cross_shares)
    names = schema.feature_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _err("features", f"duplicate feature names {dupes}")
    if label.name in names:
        raise _err("label.name", f"{label.name!r} collides with a feature name")
    return schema
