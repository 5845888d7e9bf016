"""The load suite: short Locust runs (in their own subprocess) against the backend under test.

``load_job`` runs one headless load into the scenario's artifact folder and returns its outcome;
the scenario checks its verdicts. Scenarios marked ``slow`` run in the nightly profile only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.checks.verdict import Status, Verdict
from harness.load.job import DEFAULT_MAX_PACING_P99_MS, LoadJob, LoadOutcome, SoakOptions, load_record, run_job, soak_record
from harness.load.runner import LocustPlan
from harness.load.soak import GrowthLimits
from harness.slo import Samples, evaluate, load

LOAD_SLO = Path(__file__).resolve().parent / "slo.toml"
SESSION_MARGIN_S = 10.0  # finalize, pipeline and close after a session's audio


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--profile") == "nightly":
        return
    skip = pytest.mark.skip(reason="long load scenario: nightly profile only (--profile nightly)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


def slo_verdicts(outcome: LoadOutcome, slo_file: Path = LOAD_SLO, percentiles_only: bool = True) -> list[Verdict]:
    """The load SLO file's percentile thresholds judged on this run's exact samples, one verdict
    each (no metrics: the samples are already carried by ``load.latency``)."""
    samples = Samples()
    for v in outcome.verdicts:
        for name, values in v.metrics.items():
            samples.add(name, values, v.name)
    out = []
    for r in evaluate(load(slo_file), samples):
        if percentiles_only and r.threshold.aggregate != "p":
            continue
        status = r.status if r.samples else Status.UNKNOWN
        out.append(Verdict(f"load.slo {r.name}", status, f"{outcome.job.name}: {r.message}"))
    return out


@pytest.fixture
def load_job(scenario, target, harness_options) -> Callable[..., LoadOutcome]:
    """``load_job(users=8, duration_s=20, ...)``: one headless load against the target, recorded."""

    def run(users: int, duration_s: float, *, fixtures: tuple[str, ...] = (), loops: int = 1,
            soak_limits: GrowthLimits | None = None, spawn_rate: float | None = None,
            max_pacing_p99_ms: float = DEFAULT_MAX_PACING_P99_MS, engine: str = "scripted") -> LoadOutcome:
        from harness.audio import load_manifest
        from harness.load.settings import LoadSettings

        chosen = LoadSettings("http://x", "-", fixtures=fixtures).resolve_fixtures(load_manifest())
        drain = 0.0 if soak_limits else max(f.duration_s for f in chosen) * loops + SESSION_MARGIN_S
        settings: dict[str, Any] = {
            "harness_api_key": target.api_key, "harness_protocol": target.protocol, "harness_engine": engine,
            "harness_fixtures": ",".join(fixtures) or None, "harness_loops": loops,
            "harness_duration_s": 0.0 if soak_limits else duration_s,
            "harness_allow_remote": "1" if harness_options.allow_remote else None,
        }
        out_dir = scenario.artifact_path("load")
        plan = LocustPlan(host=target.http_url, out_dir=out_dir, settings=settings, users=users,
                          spawn_rate=spawn_rate or max(1.0, users / 4), run_time_s=duration_s + drain)
        params = {"users": users, "duration_s": duration_s, "engine": engine, "fixtures": ",".join(fixtures) or "utterances",
                  "loops": loops, "soak": bool(soak_limits)}
        scenario.params.update({"load": params})
        job = LoadJob(f"{scenario.name}", plan, timeout_s=duration_s + drain + 120, max_pacing_p99_ms=max_pacing_p99_ms,
                      params=params, soak=SoakOptions(target.api_key, 2.0, soak_limits) if soak_limits else None)
        outcome = run_job(job)
        # The scenario's record carries the verdicts; these records feed the report's load section.
        scenario.run.append_record(load_record(outcome, scenario.run, with_verdicts=False))
        srec = soak_record(outcome, scenario.run, with_verdicts=False)
        if srec:
            scenario.run.append_record(srec)
        for label, rel in load_record(outcome, scenario.run, with_verdicts=False)["artifacts"].items():
            scenario.artifacts[label] = rel
        return outcome

    return run
