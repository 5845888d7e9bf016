"""Render a run directory into ``report.html``, ``summary.json`` and ``junit.xml``.

``render`` is the one entry point; it reads only the run directory (and optionally a baseline
run), so a report can be rendered again at any time, on any machine, without the backend.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness.checks.verdict import Status
from harness.report import baseline as baseline_mod
from harness.report import environment, gate as gate_mod, junit, sections, trend as trend_mod
from harness.report.model import RunData
from harness.slo import SLOResult, SLOSet, collect_samples, evaluate, load, resolve_slo_file

TEMPLATES = Path(__file__).resolve().parent / "templates"
HEADLINES = {
    Status.PASS: "Every scenario and every SLO passed.",
    Status.FAIL: "The run failed: see below for what went wrong.",
    Status.UNKNOWN: "The run could not be judged, which fails the gate.",
}


@dataclass
class ReportPaths:
    html: Path
    summary: Path
    junit: Path
    status: Status
    exit_code: int
    reasons: list[str]


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["fmt"] = sections.fmt
    return env


def _slos(data: RunData, slo_file: Path | str | None) -> tuple[SLOSet | None, list[SLOResult], str | None]:
    """The SLO set and its results. A missing default file is reported, not raised; a bad file raises."""
    try:
        path = resolve_slo_file(data.path, slo_file)
    except FileNotFoundError as exc:
        return None, [], str(exc)
    slos = load(path)
    if not data.items and data.of_kind("selftest"):
        return slos, [], None  # a self-test alone has no samples of its own: its defect runs are judged instead
    return slos, evaluate(slos, collect_samples(data.records)), None


def _run_view(data: RunData) -> dict[str, Any]:
    info = data.info
    return {
        "name": data.path.name, "path": str(data.path), "started_at": info.get("started_at", ""),
        "target": info.get("target", ""), "protocol": info.get("protocol", ""), "profile": info.get("profile", ""),
        "engine": info.get("engine", ""), "defects": info.get("defects") or [], "command": info.get("command", ""),
    }


def render(run_dir: Path | str, baseline: Path | str | None = None, slo_file: Path | str | None = None,
           history: Path | str | None = None, history_last: int = trend_mod.DEFAULT_LAST) -> ReportPaths:
    """Write the three report files into ``run_dir`` and return where they are and the gate's verdict.

    ``history``: a folder of earlier run directories; the report then shows the last
    ``history_last`` of them as a trend (``harness.report.trend``).

    Raises ``FileNotFoundError`` for a missing run, baseline or history directory or a named SLO
    file that does not exist, and ``harness.slo.SLOFileError`` (a ValueError) for a bad SLO file.
    """
    data = RunData(run_dir)
    past = trend_mod.earlier_runs(history, data.path, history_last) if history is not None else None
    if slo_file is not None and not Path(slo_file).is_file():
        raise FileNotFoundError(f"SLO file {slo_file} does not exist")
    slos, slo_results, slo_error = _slos(data, slo_file)
    gate = gate_mod.judge(data, slo_results, slo_error)
    changes = None
    if baseline is not None:
        changes = baseline_mod.diff(data, RunData(baseline), slo_results, slos)
    trend = trend_mod.build(data, slo_results, slos, past) if past is not None else None
    env_info = data.info.get("environment")
    env_source = "recorded with the run"
    if not isinstance(env_info, dict) or "packages" not in env_info:
        env_info, env_source = environment.collect(), "this machine, when the report was rendered"
    env_info = {**dict.fromkeys(environment.FIELDS, "unknown"), **env_info}
    generated_at = _dt.datetime.now().isoformat(timespec="seconds")
    slo_info = {"file": str(slos.path) if slos else None, "description": slos.description if slos else "",
                "error": slo_error}

    summary = gate_mod.summary(data, gate, slo_results, slo_info, env_info, changes, generated_at)
    if trend is not None:
        summary["trend"] = trend_mod.for_summary(trend)
    summary_path = data.path / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    junit_path = junit.write(data, slo_results, data.path / "junit.xml")

    samples = collect_samples(data.records)
    counts, _ = gate_mod.counts(data)
    slo_rows = sections.slo_rows(slo_results)
    slo_status = ("fail" if any(r["status"] == "fail" for r in slo_rows) else
                  "unknown" if any(r["status"] == "unknown" for r in slo_rows) or not slo_rows else "pass")
    warnings = [f"history {rel} could not be read" for rel in data.unreadable_histories]
    warnings += [f"earlier run {why} (left out of the trend)" for why in (trend or {}).get("skipped", [])]
    for metric, bad in samples.rejected.items():
        warnings.append(f"{len(bad)} non-numeric sample(s) of {metric} ignored, e.g. {bad[0]}")
    context = {
        "run": _run_view(data),
        "gate": {"status": gate.status.value, "word": gate.status.value.upper(), "headline": HEADLINES[gate.status],
                 "reasons": gate.reasons},
        "counts": counts,
        "slo_rows": slo_rows, "slo_passed": sum(1 for r in slo_rows if r["status"] == "pass"), "slo_status": slo_status,
        "slo_file": slo_info["file"], "slo_description": slo_info["description"], "slo_error": slo_error,
        "changes": changes,
        "trend": trend,
        "suites": sections.suites(data),
        "latency_rows": sections.latency_table(samples),
        "charts": sections.latency_charts(data, samples, slos),
        "waterfalls": sections.waterfalls(data),
        "chaos": sections.chaos_matrix(data),
        "clients": sections.clients_table(data),
        "load": sections.load_section(data),
        "benchmarks": sections.benchmark_rows(data),
        "screenshots": sections.screenshots(data),
        "selftest": sections.selftest(data),
        "env": env_info, "env_source": env_source,
        "warnings": warnings,
        "generated_at": generated_at,
    }
    html = _env().get_template("report.html.j2").render(**context)
    html_path = data.path / "report.html"
    html_path.write_text(html, encoding="utf-8")
    return ReportPaths(html_path, summary_path, junit_path, gate.status, gate.exit_code, gate.reasons)


def render_run(run_path: Path | str, slo_file: Path | str | None = None, history: Path | str | None = None,
               history_last: int = trend_mod.DEFAULT_LAST) -> Path:
    """What ``harness run`` calls after its suites: render and return the HTML's path."""
    return render(run_path, slo_file=slo_file, history=history, history_last=history_last).html
