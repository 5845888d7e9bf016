"""The self-test: does every suite catch the planted defects it claims to catch?

For each defect of ``DEFECT_SUITES`` (the "caught by" column of DEFECTS.md) whose catching suites
have tests, the catching suites run in their own pytest subprocess against an embedded reference
server started with ``--defect D``, into their own run directory under the main run's
``artifacts/selftest/<defect>/``. A defect is *caught* when a scenario fails, and the catch only
counts when the same scenario passed against the healthy server. One ``selftest`` record per
defect goes into the main run's results.jsonl; the report's defects-caught table reads them.

Only the scenarios tagged ``@pytest.mark.catches("defect", ...)`` run for a defect; a suite with no
scenario tagged for it runs whole. This module is also the pytest plugin that does that selection
(``-p harness.selftest --catches D``), which is why it imports nothing heavy.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# defect -> the suites whose scenarios must catch it (DEFECTS.md, "caught by")
DEFECT_SUITES: dict[str, tuple[str, ...]] = {
    "finalize-http-skips-pipeline": ("conformance",),
    "finalize-not-idempotent": ("conformance",),
    "zero-segment-crash": ("conformance",),
    "pipeline-event-missing": ("conformance",),
    "slow-session-create": ("conformance", "load"),
    "health-lies": ("conformance",),
    "duplicate-engine-race": ("conformance", "property"),
    "stream-gap": ("conformance", "bench"),
    "early-audio-dropped": ("conformance",),
    "no-stall-detection": ("conformance",),
    "no-resume": ("chaos", "docker"),
    "final-lost-on-close": ("chaos",),
    "no-heartbeat": ("chaos",),
    "unbounded-transcript": ("load",),
    "idle-never": ("conformance",),
    "keepalive-ignored": ("conformance",),
    "client-no-reconnect": ("browser",),
    "phi-in-localstorage": ("browser",),
    "console-error": ("browser",),
    # the example relay's (examples/relay): switched on in the system under test, not the server
    "relay-duplicate-vendor-connection": ("relay",),
    "relay-burst-gaps": ("relay",),
    "relay-no-vendor-reconnect": ("relay",),
    "relay-no-keepalive": ("relay",),
    "relay-unbounded-accumulator": ("relay",),
    "relay-health-na": ("relay",),
    "relay-no-auth": ("relay",),
    "relay-token-reuse": ("relay",),
    "relay-cross-talk": ("relay",),
}
# Suites the self-test may run per profile: load and bench are long, so nightly only.
PROFILE_SELFTEST_SUITES: dict[str, tuple[str, ...]] = {
    "ci": ("conformance", "chaos", "browser", "property", "relay", "docker"),
    "nightly": ("conformance", "chaos", "browser", "property", "relay", "docker", "load", "bench"),
}
# A defect whose catching suites are all nightly-only may still be proven in CI by one short
# scenario of theirs: the 90 s soak catches unbounded-transcript (slow-marked scenarios stay nightly).
CI_ONLY_FOR: dict[str, tuple[str, ...]] = {"unbounded-transcript": ("load",)}
MAX_PARALLEL = 2  # two cores: two defective servers and their clients at a time
DEFECT_TIMEOUT_S = 1200.0
MARKER = "catches"


# === pytest plugin: run only the scenarios that catch the given defects =======================
def pytest_addoption(parser: Any) -> None:
    parser.getgroup("harness").addoption(
        "--catches", default=None, metavar="DEFECT[,DEFECT]",
        help="run only scenarios marked @pytest.mark.catches(...) for one of these defects "
             "(a suite with none marked runs whole)")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*defects): this scenario catches these planted defects")


def tagged_defects(item: Any) -> set[str]:
    out: set[str] = set()
    for mark in item.iter_markers(MARKER):
        out.update(str(a) for a in mark.args)
    return out


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    wanted_opt = config.getoption("--catches", None)
    if not wanted_opt:
        return
    wanted = {w.strip() for w in wanted_opt.split(",") if w.strip()}
    by_suite: dict[str, list[Any]] = {}
    for item in items:
        by_suite.setdefault(_suite_of(item), []).append(item)
    keep, drop = [], []
    for suite_items in by_suite.values():
        tagged = [i for i in suite_items if tagged_defects(i) & wanted]
        chosen = tagged or suite_items  # nothing tagged in this suite: the whole suite is the catcher
        keep += chosen
        drop += [i for i in suite_items if i not in chosen]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _suite_of(item: Any) -> str:
    parts = Path(str(item.path)).parts
    if "scenarios" in parts and parts.index("scenarios") + 2 < len(parts):
        return parts[parts.index("scenarios") + 1]
    return Path(str(item.path)).parent.name


# === the self-test proper ====================================================================
@dataclass
class DefectResult:
    defect: str
    suites: list[str]
    caught: bool = False
    failing: list[dict[str, Any]] = field(default_factory=list)  # suite, scenario, status, messages
    healthy_passed: bool | None = None  # the failing scenarios passed against the healthy server
    healthy_failing: list[str] = field(default_factory=list)
    exit_code: int | None = None
    harness_error: str | None = None
    duration_s: float = 0.0
    run_dir: str = ""
    log: str = ""

    @property
    def counts(self) -> bool:
        """A catch that counts: the suite failed on the defect and passed without it."""
        return self.caught and self.healthy_passed is True and not self.harness_error

    def to_record(self) -> dict[str, Any]:
        return {"record": "selftest", **asdict(self), "counted": self.counts}


@dataclass
class SelftestSummary:
    results: list[DefectResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # defect -> why it was not run
    duration_s: float = 0.0
    harness_error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.harness_error and bool(self.results) and all(r.counts for r in self.results)

    def lines(self) -> list[str]:
        caught = sum(r.counts for r in self.results)
        out = [f"Self-test: {caught}/{len(self.results)} defects caught in {self.duration_s:.0f} s"]
        for r in self.results:
            if r.harness_error:
                word, why = "ERROR", r.harness_error
            elif r.counts:
                first = r.failing[0] if r.failing else {}
                word, why = "CAUGHT", f"{first.get('scenario', '')}: {(first.get('messages') or [''])[0]}"
            elif r.caught:
                word, why = "SUSPECT", "also fails against the healthy server: " + ", ".join(r.healthy_failing or ["?"])
            else:
                word, why = "MISSED", f"{', '.join(r.suites)} passed with the defect switched on"
            out.append(f"  {word:8} {r.defect:30} {why[:200]}")
        for defect, why in self.skipped.items():
            out.append(f"  {'SKIPPED':8} {defect:30} {why}")
        if self.harness_error:
            out.append(f"  HARNESS ERROR: {self.harness_error}")
        return out


def plan(root: Path, profile: str, only: tuple[str, ...] = ()) -> tuple[dict[str, list[str]], dict[str, str]]:
    """defect -> the suites to run for it, and defect -> why it is skipped."""
    from harness.runner import suite_has_tests

    unknown = [d for d in only if d not in DEFECT_SUITES]
    if unknown:
        from harness.cli import HarnessError

        raise HarnessError(f"unknown defect {', '.join(map(repr, unknown))}; known: {', '.join(DEFECT_SUITES)}")
    allowed = PROFILE_SELFTEST_SUITES.get(profile, PROFILE_SELFTEST_SUITES["ci"])
    runs: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for defect, suites in DEFECT_SUITES.items():
        if only and defect not in only:
            continue
        present = [s for s in suites if (root / s).is_dir() and suite_has_tests(root / s)]
        usable = [s for s in present if s in allowed or (profile == "ci" and s in CI_ONLY_FOR.get(defect, ()))]
        if usable:
            runs[defect] = usable
        elif present:
            skipped[defect] = f"its suites ({', '.join(present)}) run in the nightly profile only"
        else:
            skipped[defect] = f"no tests yet in {', '.join(suites)}"
    return runs, skipped


def _prepare_run_dir(path: Path) -> Path:
    """A run directory the pytest plugin opens as-is (no ``latest`` link beside it)."""
    for sub in ("histories", "artifacts"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / "results.jsonl").touch()
    return path


def _scenario_records(run_path: Path) -> list[dict[str, Any]]:
    results = run_path / "results.jsonl"
    if not results.exists():
        return []
    return [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]


def _failing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        if rec.get("record") != "scenario" or rec.get("status") == "pass":
            continue
        messages = [f"{v['name']}: {v.get('message', '')}" for v in rec.get("verdicts", []) if v.get("status") != "pass"]
        if rec.get("error"):
            messages.append(f"error: {rec['error']}")
        out.append({"suite": rec.get("suite"), "scenario": rec.get("scenario"), "status": rec.get("status"),
                    "messages": messages})
    # real catches (fail) first, unknowns after
    return sorted(out, key=lambda f: f["status"] != "fail")


def _healthy_statuses(run: Any) -> dict[str, str]:
    """scenario -> status in the main run, for records made without defects."""
    out: dict[str, str] = {}
    for rec in run.records("scenario"):
        if not rec.get("params", {}).get("defects"):
            key = f"{rec.get('suite')}/{rec.get('scenario')}"
            if out.get(key) != "fail":
                out[key] = rec.get("status", "unknown")
    return out


def run_selftest(run: Any, root: Path, options: Any, *, only: tuple[str, ...] | None = None,
                 max_parallel: int = MAX_PARALLEL, stream=None) -> SelftestSummary:
    """Run every defect's catching suites and record one ``selftest`` record per defect in ``run``."""
    from harness.runner import Progress, SuiteOutcome, run_pytest

    started = time.monotonic()
    summary = SelftestSummary()
    if options.target:
        summary.harness_error = "the self-test switches defects on in the embedded server; it cannot run against --target"
        return summary
    only = tuple(options.defects) if only is None else only
    runs, summary.skipped = plan(root, options.profile, only)
    if not runs:
        summary.harness_error = "no defect has a catching suite with tests under " + str(root)
        return summary
    base = run.path / "artifacts" / "selftest"
    healthy_opts = replace(options, defects=())

    # The healthy baseline: the same selection, no defect; reused from the main run when it has it.
    healthy = _healthy_statuses(run)
    needed_suites = sorted({s for suites in runs.values() for s in suites})
    missing = [s for s in needed_suites if not any(k.startswith(f"{s}/") for k in healthy)]

    with Progress((["healthy"] if missing else []) + list(runs), stream=stream) as progress:
        lock = threading.Lock()

        def report(outcome: SuiteOutcome) -> None:
            with lock:
                progress.update(outcome)

        if missing:
            hdir = _prepare_run_dir(base / "healthy")
            outcome = run_pytest("healthy", [root / s for s in missing], hdir, healthy_opts,
                                 log_path=hdir / "pytest.log", on_progress=report, timeout_s=DEFECT_TIMEOUT_S,
                                 extra=["-p", "harness.selftest", "--catches", ",".join(runs)])
            if outcome.harness_error:
                summary.harness_error = (f"the healthy baseline could not run: {outcome.harness_error} "
                                         f"(log {run.relative(outcome.log)})")
                return summary  # without a baseline no catch can be told from a broken scenario
            for rec in _scenario_records(hdir):
                if rec.get("record") == "scenario":
                    healthy[f"{rec.get('suite')}/{rec.get('scenario')}"] = rec.get("status", "unknown")

        def one(defect: str) -> DefectResult:
            ddir = _prepare_run_dir(base / defect)
            t0 = time.monotonic()
            outcome = run_pytest(defect, [root / s for s in runs[defect]], ddir, replace(options, defects=(defect,)),
                                 log_path=ddir / "pytest.log", on_progress=report, timeout_s=DEFECT_TIMEOUT_S,
                                 extra=["-p", "harness.selftest", "--catches", defect])
            failing = _failing(_scenario_records(ddir))
            result = DefectResult(
                defect=defect, suites=runs[defect], exit_code=outcome.exit_code,
                harness_error=outcome.harness_error, duration_s=round(time.monotonic() - t0, 1),
                run_dir=run.relative(ddir), log=run.relative(outcome.log), failing=failing,
                caught=outcome.exit_code == 1 and any(f["status"] == "fail" for f in failing),
            )
            caught_by = [f"{f['suite']}/{f['scenario']}" for f in failing if f["status"] == "fail"]
            if caught_by:
                statuses = [healthy.get(k) for k in caught_by]
                result.healthy_failing = [k for k, s in zip(caught_by, statuses) if s not in (None, "pass")]
                result.healthy_passed = None if None in statuses else not result.healthy_failing
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, MAX_PARALLEL))) as pool:
            results = list(pool.map(one, list(runs)))
    for result in results:
        run.append_record(result.to_record())
    summary.results = results
    summary.duration_s = time.monotonic() - started
    run.append_record({"record": "selftest_summary", "duration_s": round(summary.duration_s, 1),
                       "defects": len(results), "caught": sum(r.counts for r in results),
                       "skipped": summary.skipped})
    return summary
