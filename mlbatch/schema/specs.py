"""The dataset schema's objects: what mlbatch.schema.load_schema builds from a
``schemas/<dataset>.yaml`` file (field reference: docs/schema.md)."""
from __future__ import annotations

import dataclasses
from typing import Any

from mlbatch.expr import Expr
from mlbatch.errors import UsageError

COLUMN_TYPES = ("int64", "float64", "string")
FORMATS = ("csv", "jsonl", "parquet")
SCALES = {"z_score": "z", "scale_0_1": "01"}
LABEL_OPS = (">", ">=", "<", "<=", "==")
TASKS = ("binary_classification", "regression", "multiclass_classification")
MAX_CLASSES = 1000
LABEL_TRANSFORMS = (None, "log1p")
SPLIT_BY = ("key", "row", "content")
# legacy derived form {fn, args}: fn -> (number of args, the expression it stands for)
DERIVED_FNS = {"floordiv": (2, "{0} // {1}"), "subtract": (2, "{0} - {1}"),
               "day_of_week": (3, "day_of_week({0}, {1}, {2})")}
# a feature's skew/drift alert threshold unless it declares one (Vertex AI's default)
DRIFT_THRESHOLD = 0.3
FEATURE_TYPES = {"int64": "int64", "float64": "float64", "string": "string", "bool": "int64"}


class SchemaError(ValueError, UsageError):
    """The schema file is invalid; the message names the field."""


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool = False
    min: float | None = None
    max: float | None = None
    null_values: tuple[str, ...] | None = None  # None: the table's null_tokens
    allow_constant: bool = False  # all-null/constant as a feature source: a warning only


@dataclasses.dataclass(frozen=True)
class TableSpec:
    name: str
    path: str
    format: str
    columns: tuple[ColumnSpec, ...]
    null_tokens: tuple[str, ...] = ("",)
    key: tuple[str, ...] = ()
    allow_empty: bool = False  # no data rows is an error unless set

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

    def null_values(self, name: str) -> tuple[str, ...]:
        """The strings read as null in column `name`: its own null_values, else the
        table's null_tokens ("NA" can be a code in one column and missing in others)."""
        own = self.column(name).null_values
        return self.null_tokens if own is None else own

    @property
    def per_column_nulls(self) -> bool:
        """True when some column's null strings differ from the table's."""
        return any(c.null_values is not None and c.null_values != self.null_tokens
                   for c in self.columns)


@dataclasses.dataclass(frozen=True)
class AsOfSpec:
    """An as-of join's time: per key, the lookup row with the latest `lookup_time` at or
    before the main row's `time`, and at most `tolerance_us` microseconds before it."""
    time: Expr  # of the main row (timestamp)
    lookup_time: Expr  # of the lookup row (timestamp)
    tolerance: str  # as written ("3h")
    tolerance_us: int


@dataclasses.dataclass(frozen=True)
class JoinSpec:
    """A left join: the main row's `left` values (one expression per key, default the
    column of the same name) equal the lookup's `on` columns; `as_of` adds a time."""
    table: str
    on: tuple[str, ...]
    prefix: str
    left: tuple[Expr, ...] = ()
    many_to_one: bool = False  # a duplicate lookup key stops the job instead of being dropped
    as_of: AsOfSpec | None = None

    @property
    def key_exprs(self) -> list[str]:
        """The main-row side of each key, as written."""
        return [e.text for e in self.left] or list(self.on)


@dataclasses.dataclass(frozen=True)
class DerivedSpec:
    """A derived column: `expr` evaluated per row (mlbatch.expr). The legacy
    {fn, args} form is loaded as the expression it stands for."""
    name: str
    expr: Expr
    allow_constant: bool = False  # all-null or constant over the input: a warning only

    @property
    def type(self) -> str:
        return self.expr.type


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """The label: `expr` (boolean for binary_classification, numeric for regression, a
    string for multiclass_classification: its value is one of `classes`, else `other` when
    declared (the last class), else the row is excluded with its reason).

    `column`, `op`, `value` are the legacy `column op value` form's fields; for a label
    written as `expr:` they are None except `column`, which is the expression's source
    column when it reads exactly one.
    """
    name: str
    task: str
    column: str | None
    op: str | None = None
    value: float | None = None
    transform: str | None = None  # regression: None | "log1p"; trainers apply the inverse
    expr: Expr | None = None  # always set by load_schema
    classes: tuple[str, ...] = ()  # multiclass: the declared classes, `other` last if set
    other: str | None = None  # multiclass: the class of every undeclared value
    # multiclass `classes: {top_k: K}`: the K most frequent train values (resolve_classes);
    # until resolved `classes` is just (other,), so every value maps to `other`
    top_k: int | None = None


@dataclasses.dataclass(frozen=True)
class PartitionSpec:
    """How the raw data is split by period: Hive folders ``KEY=PERIOD/`` under the input
    (docs/periods.md); ``granularity`` (month | day) when declared, else any."""
    key: str = "period"
    granularity: str | None = None


@dataclasses.dataclass(frozen=True)
class LimitsSpec:
    """How much bad input a run may absorb before it fails (as BigQuery's
    max_bad_records): past it the job fails, output uncommitted."""
    max_dead_letter_share: float = 0.01  # of the records read, per table
    max_dead_letters: int | None = None  # an absolute cap as well, when set


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """by "key": hash of `key` columns; "content": of every main-table column (`key`
    lists them); "row": of the record's source file name and line (`key` empty)."""
    key: tuple[str, ...]
    eval_fraction: float
    salt: str = ""
    by: str = "key"


@dataclasses.dataclass(frozen=True)
class NumericFeature:
    column: str
    scale: str = "z_score"
    fill: Any = "mean"  # "mean" or a number
    drift_threshold: float = DRIFT_THRESHOLD

    @property
    def name(self) -> str:
        return f"{self.column}_{SCALES[self.scale]}"


@dataclasses.dataclass(frozen=True)
class BucketFeature:
    column: str
    num_buckets: int
    fill: Any = "mean"
    drift_threshold: float = DRIFT_THRESHOLD

    @property
    def name(self) -> str:
        return f"{self.column}_bucket"


@dataclasses.dataclass(frozen=True)
class VocabFeature:
    column: str
    top_k: int | None = None
    frequency_threshold: int | None = None
    num_oov_buckets: int = 1
    drift_threshold: float = DRIFT_THRESHOLD

    @property
    def name(self) -> str:
        return f"{self.column}_id"


@dataclasses.dataclass(frozen=True)
class HashFeature:
    column: str
    hash_buckets: int
    drift_threshold: float = DRIFT_THRESHOLD

    @property
    def name(self) -> str:
        return f"{self.column}_hash"


@dataclasses.dataclass(frozen=True)
class CrossFeature:
    cross: str
    columns: tuple[str, ...]
    hash_buckets: int
    drift_threshold: float = DRIFT_THRESHOLD

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
    filters: tuple[Expr, ...] = ()  # boolean; a row failing one goes to excluded/
    identity: tuple[str, ...] = ()  # main-table columns naming a row across files (late labels)
    partitions: PartitionSpec = PartitionSpec()  # period folders (docs/periods.md)

    @property
    def main_table(self) -> TableSpec:
        return self.tables[self.main]

    def column_types(self) -> dict[str, str]:
        """Column name -> expression type (mlbatch.expr.TYPES) after joins and derived
        columns: what expressions may read."""
        cols = {c.name: c.type for c in self.main_table.columns}
        for j in self.joins:
            for c in self.tables[j.table].columns:
                if c.name not in j.on:
                    cols[j.prefix + c.name] = c.type
        for d in self.derived:
            cols[d.name] = d.type
        return cols

    def prepared_columns(self) -> dict[str, str]:
        """Column name -> type after the joins and derived columns (before tf.Transform),
        as features see them: a boolean is int64 0/1; a timestamp is not a feature type."""
        return {n: FEATURE_TYPES.get(t, t) for n, t in self.column_types().items()}

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


def resolve_classes(schema: DatasetSchema, counts: dict[str, int]) -> DatasetSchema:
    """A `classes: {top_k: K}` label's classes from the train split's value counts: the K
    most frequent values (more rows first, then the value's string order: deterministic),
    then `other` for the rest. Raises SchemaError when no value is left to learn."""
    lab = schema.label
    ranked = sorted(((v, n) for v, n in counts.items() if v != lab.other and n > 0),
                    key=lambda vn: (-vn[1], vn[0]))
    top = tuple(v for v, _ in ranked[:lab.top_k])
    if not top:
        raise SchemaError(f"label {lab.name!r}: classes: {{top_k: {lab.top_k}}} found no "
                          f"label value on the train split")
    return with_classes(schema, (*top, lab.other))


def with_classes(schema: DatasetSchema, classes: tuple[str, ...] | list[str]) -> DatasetSchema:
    """The schema with its multiclass label's classes set (a feature artifact records the
    resolved classes of a top_k label; serving reads them from there)."""
    return dataclasses.replace(schema, label=dataclasses.replace(schema.label,
                                                                 classes=tuple(classes)))
