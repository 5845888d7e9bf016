"""The reliability report: ``report.html`` (self-contained), ``summary.json`` and ``junit.xml``."""

from harness.report.render import ReportPaths, render, render_run

__all__ = ["ReportPaths", "render", "render_run"]
