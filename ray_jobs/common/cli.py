"""What every Ray job's command line shares: the help format, the error exit, logging."""
from __future__ import annotations

import argparse
import logging
import sys

USAGE_EXIT = 2  # usage and config errors, as argparse exits


class HelpFormatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every flag's default."""


def parser(prog: str, doc: str | None, docs_page: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=HelpFormatter,
        epilog=f"Every setting, its default and its meaning: {docs_page}")


def fail(prog: str, error: BaseException) -> int:
    """Names the problem on stderr; returns the usage exit code."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return USAGE_EXIT


def configure_logging() -> None:
    """INFO to stderr: only under ``if __name__ == "__main__"`` of a job."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def prefer_loopback() -> None:
    """What a job's ``main`` does first, before anything imports Ray (see
    ``ray_jobs.common.cluster.prefer_loopback``)."""
    from ray_jobs.common.cluster import prefer_loopback as _prefer
    _prefer()
