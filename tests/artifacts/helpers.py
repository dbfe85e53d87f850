"""For tests that need a committed artifact with bad content (to test what a reader or a
trainer does with data a producer got wrong): ``recommit`` records the directory's files
as they are now, as if the producer had committed them so. Without it, readers refuse the
edited directory as changed after its commit (``IntegrityError``) before looking inside."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from mlbatch.artifacts.manifest import MANIFEST, digest_of, scan_outputs


def recommit(root: str | Path) -> None:
    """Rewrites ``root``'s artifact.json: file list, digest and per-split row counts of
    the files as they are now (a Parquet split's rows recounted)."""
    root = Path(root)
    doc = json.loads((root / MANIFEST).read_text())
    excludes = tuple(doc["outputs"].get("digest_excludes") or ())
    files = scan_outputs(str(root), excludes)
    doc["outputs"]["files"] = files
    doc["digest"] = digest_of(files)
    for split in list(doc["outputs"].get("rows") or {}):
        parts = sorted((root / split).glob("*.parquet"))
        doc["outputs"]["rows"][split] = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    (root / MANIFEST).write_text(json.dumps(doc, indent=2))
