"""The reliability report: ``report.html`` (self-contained), ``summary.json`` and ``junit.xml``.

``render(run_dir, baseline=None, slo_file=None) -> ReportPaths`` reads only the run directory:

* ``scenario`` records (``ScenarioResult``): the gate, the suites, the SLO samples (every
  verdict's ``metrics``), the latency charts and worst-session timelines (from ``histories``),
  the chaos matrix (scenarios whose ``params`` have ``fault``, optionally ``fault_params`` and
  ``layer``) and the browser section (artifacts labelled ``screenshot…``, inlined as base64);
* any other record with ``verdicts`` (e.g. ``load``) is judged by the gate like a scenario;
* ``load`` / ``soak``: scalars shown as a list, lists of objects (``stats``) as tables,
  ``artifacts`` as relative links;
* ``benchmark``: pytest-benchmark's shape (``name``, ``group``, ``stats`` in seconds: shown in
  ms) or flat figures (``median_ms``, ``mean_ms`` …, anything else as notes);
* ``selftest`` / ``selftest_summary`` (``harness.selftest``): the defects-caught table;
* ``run.json``: header fields, ``slo_file`` / ``profile`` for the SLO file, and
  ``environment`` (``harness.report.environment.collect()``) when recorded at run time.

Exit status (``ReportPaths.exit_code``): 0 only when everything passed; 1 on any failure and on
any unknown, which never passes silently.
"""

from harness.report.render import ReportPaths, render, render_run

__all__ = ["ReportPaths", "render", "render_run"]
