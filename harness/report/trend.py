"""The trend over earlier runs: each SLO's value run by run, what flipped since the previous run,
and how long each suite took, so a nightly reader sees drift before it crosses a threshold.

``DIR`` (``--history DIR``) is a folder of run directories (``reports/`` itself, or a folder a CI
job filled with earlier runs' artifacts). Every sub-folder with a ``results.jsonl`` counts; the
run being rendered is left out of the earlier ones however it is reached (``latest`` symlink,
the same folder under another path). Runs are ordered by the ``started_at`` of their ``run.json``
(their folder name when they have none: run ids sort by time).

Earlier runs are judged again with the current run's SLO file, as ``baseline`` does, so every
point of a chart answers the same question.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report import baseline as baseline_mod
from harness.report import charts
from harness.report.model import RunData
from harness.slo import SLOResult, SLOSet, collect_samples, evaluate

DEFAULT_LAST = 10


@dataclass
class Past:
    """The earlier runs found in DIR (oldest first) and the folders that could not be read."""

    runs: list[RunData]
    skipped: list[str]


def _order_key(data: RunData) -> tuple[str, str]:
    return (str(data.info.get("started_at") or ""), data.path.name)


def earlier_runs(history_dir: Path | str, current: Path | str, last: int = DEFAULT_LAST) -> Past:
    """The ``last`` runs in ``history_dir`` before ``current`` (which is never one of them).

    Raises ``FileNotFoundError`` when ``history_dir`` is not a directory and ``ValueError`` for
    ``last`` < 1. A folder whose results cannot be read is skipped and named in ``skipped``.
    """
    root = Path(history_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"history directory {root} does not exist")
    if last < 1:
        raise ValueError(f"the number of earlier runs to show must be at least 1, not {last}")
    here = Path(current).resolve()
    runs, skipped, seen = [], [], {here}
    for sub in sorted(root.iterdir()):
        if not (sub / "results.jsonl").is_file():
            continue
        real = sub.resolve()
        if real in seen:
            continue  # the current run, or a symlink (reports/latest) to a run already read
        seen.add(real)
        try:
            data = RunData(real)
            data.items  # noqa: B018 - read now, so a corrupt file is skipped here, not in the middle of rendering
        except (OSError, ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{sub.name}: {exc}")
            continue
        runs.append(data)
    runs.sort(key=_order_key)
    current_key = _order_key(RunData(here))
    if current_key[0]:  # runs started after the one being rendered are not its history
        runs = [r for r in runs if not r.info.get("started_at") or _order_key(r) < current_key]
    return Past(runs[-last:], skipped)


def suite_durations(data: RunData) -> dict[str, float]:
    """Seconds per suite: as ``harness run`` timed its pytest process (``run.json``), else the sum of
    the suite's scenario times (a run written by pytest alone)."""
    recorded = data.info.get("suite_durations")
    if isinstance(recorded, dict) and recorded:
        return {str(k): float(v) for k, v in recorded.items() if isinstance(v, (int, float))}
    out: dict[str, float] = {}
    for item in data.items:
        out[item.suite] = out.get(item.suite, 0.0) + float(item.duration_s or 0.0)
    return out


def _label(data: RunData) -> str:
    started = str(data.info.get("started_at") or "")
    return started.replace("T", " ")[:16] if started else data.path.name


def build(current: RunData, slo_results: list[SLOResult], slos: SLOSet | None, past: Past) -> dict[str, Any]:
    """The trend as plain data (for ``summary.json``) plus chart data URIs (for the HTML)."""
    runs = past.runs + [current]
    labels = [_label(r) for r in runs]
    names = [r.path.name for r in runs]
    slo_series = []
    if slos is not None:
        per_run = [{r.name: r for r in evaluate(slos, collect_samples(run.records))} for run in past.runs]
        for result in slo_results:
            points = [p.get(result.name) for p in per_run] + [result]
            values = [p.measured if p is not None else None for p in points]
            statuses = [p.status.value if p is not None else "unknown" for p in points]
            slo_series.append({
                "name": result.name, "metric": result.threshold.metric, "expression": result.threshold.expression,
                "target": result.threshold.target, "values": values, "statuses": statuses,
                "chart": charts.slo_trend(labels, values, statuses, result.threshold.target, result.name),
            })
    flipped: dict[str, Any] | None = None
    if past.runs:
        previous = past.runs[-1]
        d = baseline_mod.diff(current, previous, slo_results, None)
        flipped = {"previous": previous.path.name, "previous_run": _label(previous),
                   "flipped": d["flipped"], "new": d["new"], "gone": d["gone"]}
    durations = [suite_durations(r) for r in runs]
    suites = sorted({s for d in durations for s in d})
    return {
        "runs": [{"name": n, "label": lab, "path": str(r.path)} for n, lab, r in zip(names, labels, runs)],
        "slo": slo_series,
        "since_previous": flipped,
        "suite_durations": {"suites": suites, "rows": [
            {"suite": s, "seconds": [d.get(s) for d in durations]} for s in suites]},
        "skipped": past.skipped,
    }


def for_summary(trend: dict[str, Any]) -> dict[str, Any]:
    """The trend without its charts: what ``summary.json`` carries."""
    return {**trend, "slo": [{k: v for k, v in s.items() if k != "chart"} for s in trend["slo"]]}
