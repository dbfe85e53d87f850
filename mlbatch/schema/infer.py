"""Schema inference (as TFDV's ``infer_schema``) for the person who has files and no
schema yet: profiles raw files (mlbatch.schema.profile) and drafts a schema YAML that loads
and runs as is (mlbatch.schema.draft), for the user to review.

    python -m mlbatch.schema.infer FILES... --output draft.yaml [--main TABLE] [--name NAME]
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mlbatch import logs
from mlbatch.schema.draft import render
from mlbatch.schema.profile import InferError, profile_file

LOGGER = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlbatch.schema.infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="raw files, one table each")
    parser.add_argument("--output", required=True, type=Path, help="the draft schema YAML")
    parser.add_argument("--main", help="the main table (default: the first file's)")
    parser.add_argument("--name", help="the dataset name (default: the main table's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Drafts the schema; 0 on success, 2 (naming the file) when a file cannot be read."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logs.setup()
    try:
        tables = [profile_file(p) for p in args.files]
        text = render(tables, args.main, args.name)
    except (InferError, OSError, UnicodeDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.output.write_text(text, encoding="utf-8")
    LOGGER.info("wrote %s (%d table(s)): review it, then run the feature job with "
                "--input <the files' folder>", args.output, len(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
