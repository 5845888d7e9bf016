"""One load job, end to end: run Locust (subprocess), sample /health if soaking, read the raw
samples, and build the ``load`` / ``soak`` records of the run directory.

Used by ``harness load`` and by the load scenarios alike, so a scenario's numbers are the CLI's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.verdict import Status, Verdict, combine
from harness.load import runner, samples as samples_mod
from harness.load.generator import GeneratorWatch, judge_generator
from harness.load.runner import LocustPlan, LocustResult
from harness.load.soak import GrowthLimits, HealthSampler, judge_growth
from harness.results import RunDir
from harness.errors import ServiceError

DEFAULT_MAX_PACING_P99_MS = 100.0  # a guard: beyond it the generator, not the backend, set the latencies


class LoadRunError(ServiceError):
    """Locust did not run (bad settings, crashed, produced nothing); the message has its log's tail."""


@dataclass
class SoakOptions:
    api_key: str | None
    interval_s: float = 2.0
    limits: GrowthLimits = field(default_factory=GrowthLimits)


@dataclass
class LoadJob:
    name: str
    plan: LocustPlan
    timeout_s: float  # hard limit on the Locust process
    max_pacing_p99_ms: float | None = DEFAULT_MAX_PACING_P99_MS
    soak: SoakOptions | None = None
    params: dict[str, Any] = field(default_factory=dict)  # shown in the record
    watch_generator: bool = True  # measure the machine's noise and Locust's CPU beside the load


@dataclass
class LoadOutcome:
    job: LoadJob
    locust: LocustResult
    samples: samples_mod.LoadSamples
    summary: dict[str, Any]
    verdicts: list[Verdict]
    soak_samples: list[dict[str, Any]] = field(default_factory=list)
    soak_figures: dict[str, Any] = field(default_factory=dict)
    soak_verdict: Verdict | None = None
    generator: dict[str, Any] | None = None  # harness.load.generator.judge_generator: figures, warnings

    @property
    def status(self) -> Status:
        return combine(self.verdicts + ([self.soak_verdict] if self.soak_verdict else []))


def run_job(job: LoadJob) -> LoadOutcome:
    """Run the job; raises LoadRunError when Locust could not run or measured nothing at all."""
    sampler = HealthSampler(job.plan.host, job.soak.api_key, job.soak.interval_s) if job.soak else None
    watch = GeneratorWatch(job.timeout_s + 30) if job.watch_generator else None
    if sampler:
        sampler.start()
    if watch:
        watch.start()
    try:
        result = runner.run_locust(job.plan, job.timeout_s, on_start=watch.watch if watch else None)
    finally:
        if sampler:
            sampler.stop()
        watched = watch.stop() if watch else None
    samples = samples_mod.read_samples(job.plan.samples_dir)
    if result.returncode not in (0, 1) and not samples.sessions:
        raise LoadRunError(f"Locust exited with code {result.returncode} and measured nothing; "
                           f"log {result.log}:\n{result.log_tail()}")
    if not samples.sessions and not samples.requests:
        raise LoadRunError(f"Locust ran but no session was measured (exit code {result.returncode}); "
                           f"log {result.log}:\n{result.log_tail()}")
    summary = samples_mod.summarize(samples, start=result.started)
    verdicts = samples_mod.verdicts(samples, job.max_pacing_p99_ms, who=job.name)
    if result.timed_out:
        verdicts.append(Verdict("load.bounded", Status.UNKNOWN,
                                f"{job.name}: Locust overran its {job.timeout_s:.0f} s limit and was stopped"))
    outcome = LoadOutcome(job, result, samples, summary, verdicts)
    if watched is not None:
        outcome.generator = judge_generator(watched, summary["pacing_ms"].get("p99"))
    if sampler:
        outcome.soak_samples = list(sampler.samples)
        outcome.soak_verdict, outcome.soak_figures = judge_growth(sampler.samples, job.soak.limits,  # type: ignore[union-attr]
                                                                  sampler.errors, who=job.name)
    return outcome


def _step_rows(outcome: LoadOutcome) -> list[dict[str, Any]]:
    locust_rows = {r["name"]: r for r in runner.locust_stats(outcome.job.plan).get("rows", [])}
    rows = []
    for name, (kind, metric) in samples_mod.STEPS.items():
        d = outcome.summary["steps"][name]
        lr = locust_rows.get(name, {})
        rows.append({"step": name, "type": kind, "metric": metric, "count": d.get("count", 0),
                     "p50_ms": d.get("p50"), "p95_ms": d.get("p95"), "p99_ms": d.get("p99"), "max_ms": d.get("max"),
                     "locust_p95_ms": lr.get("p95_ms"), "failures": lr.get("failures")})
    return rows


def artifacts(run: RunDir, plan: LocustPlan) -> dict[str, str]:
    out = {}
    candidates = {"locust report": plan.files["html"], "locust log": plan.files["log"],
                  "locust stats (csv)": Path(f"{plan.files['csv_prefix']}_stats.csv"),
                  "locust stats history (csv)": Path(f"{plan.files['csv_prefix']}_stats_history.csv"),
                  "locust failures (csv)": Path(f"{plan.files['csv_prefix']}_failures.csv"),
                  "locust stats (json)": plan.files["json"], "raw samples": plan.samples_dir}
    for label, path in candidates.items():
        if path.exists():
            out[label] = run.relative(path)
    return out


def load_record(outcome: LoadOutcome, run: RunDir, with_verdicts: bool = True) -> dict[str, Any]:
    """The ``load`` record: exact figures, Locust's own, the timeline, failures and artifacts.

    ``with_verdicts=False`` for a scenario, whose own record carries the verdicts (SLOs must not
    count the same samples twice)."""
    s = outcome.summary
    locust = runner.locust_stats(outcome.job.plan)
    record: dict[str, Any] = {
        "record": "load",
        "name": outcome.job.name,
        "params": outcome.job.params,
        "status": outcome.status.value,
        "sessions": s["sessions"],
        "throughput": s["throughput"],
        "pacing_ms": s["pacing_ms"],
        "words": s["words"],
        "steps": _step_rows(outcome),
        "failures": s["failures"]["top"],
        "timeline": s["timeline"],
        "locust": {"requests": (locust.get("total") or {}).get("requests"),
                   "failures": (locust.get("total") or {}).get("failures"),
                   "rps": (locust.get("total") or {}).get("rps"),
                   "exit_code": outcome.locust.returncode, "timed_out": outcome.locust.timed_out},
        "duration_s": round(outcome.locust.duration_s, 3),
        "artifacts": artifacts(run, outcome.job.plan),
    }
    if outcome.generator is not None:
        record["generator"] = outcome.generator
    if s.get("bad_lines"):
        record["sample_file_problems"] = s["bad_lines"]
    if with_verdicts:
        record["verdicts"] = [v.to_dict() for v in outcome.verdicts]
    return record


def soak_record(outcome: LoadOutcome, run: RunDir, with_verdicts: bool = True) -> dict[str, Any] | None:
    """The ``soak`` record: memory figures and verdict, ~60 rss rows (every sample in an artifact)."""
    if outcome.soak_verdict is None:
        return None
    raw = outcome.job.plan.out_dir / "health.jsonl"
    raw.write_text("".join(json.dumps(x) + "\n" for x in outcome.soak_samples), encoding="utf-8")
    t0 = outcome.soak_samples[0]["t"] if outcome.soak_samples else 0.0
    step = max(1, len(outcome.soak_samples) // 60)  # the table shows ~60 rows; the chart every sample
    record: dict[str, Any] = {
        "record": "soak",
        "name": outcome.job.name,
        "status": outcome.soak_verdict.status.value,
        "memory": outcome.soak_figures,
        "rss": [{"t_s": round(x["t"] - t0, 1), "rss_mb": round(x["rss_bytes"] / 1024 / 1024, 2),
                 "active_sessions": x.get("active_sessions")} for x in outcome.soak_samples[::step]],
        "artifacts": {"health samples": run.relative(raw)},
    }
    if with_verdicts:
        record["verdicts"] = [outcome.soak_verdict.to_dict()]
    return record
