"""What every Ray job's command line shares: the help format (the error exit and logging
are every job's: ``mlbatch.errors``, ``mlbatch.logs``)."""
from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every flag's default."""


def parser(prog: str, doc: str | None, docs_page: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=HelpFormatter,
        epilog=f"Every setting, its default and its meaning: {docs_page}")


def prefer_loopback() -> None:
    """What a job's ``main`` does first, before anything imports Ray (see
    ``ray_jobs.common.cluster.prefer_loopback``)."""
    from ray_jobs.common.cluster import prefer_loopback as _prefer
    _prefer()
