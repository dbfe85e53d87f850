"""The run report: one self-contained HTML page (and the same numbers as Markdown) per
pipeline run, from the run's artifacts only (``python -m pipelines.report RUN``)."""
from pipelines.report.build import ReportError, build_report

__all__ = ["ReportError", "build_report"]
