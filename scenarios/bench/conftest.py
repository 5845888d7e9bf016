"""The bench suite: pytest-benchmark measurements of the backend and of the harness itself.

Benchmarks measure; nothing here asserts a wall-clock target. pytest-benchmark's JSON goes into
the run directory (``artifacts/bench/benchmark.json``) and every benchmark becomes a
``benchmark`` record, which the report tables. With ``--bench-baseline RUN_DIR`` (or
``$HARNESS_BENCH_BASELINE``) each median is compared with the same benchmark of an earlier run:
one slower by more than ``--bench-tolerance`` (default 0.25, i.e. +25 %) fails the run, through a
``benchmark_baseline`` record whose verdicts the gate reads, and the pytest session's exit status.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from harness.checks.verdict import Status, Verdict
from harness.results import RunDir

RUN_KEY = pytest.StashKey[RunDir]()
REGRESSED_KEY = pytest.StashKey[list]()
_TMP_KEY = pytest.StashKey[str]()
STAT_KEYS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "rounds", "iterations", "ops")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness bench")
    g.addoption("--bench-baseline", default=os.environ.get("HARNESS_BENCH_BASELINE"), metavar="RUN_DIR",
                help="compare every benchmark's median with this earlier run's")
    g.addoption("--bench-tolerance", type=float, default=float(os.environ.get("HARNESS_BENCH_TOLERANCE", "0.25")),
                help="allowed slow-down of a median before it counts as a regression (0.25 = +25%%)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    baseline = config.getoption("--bench-baseline")
    if baseline and not (Path(baseline) / "results.jsonl").is_file():
        raise pytest.UsageError(f"--bench-baseline {baseline} is not a run directory (no results.jsonl)")
    if not 0 <= config.getoption("--bench-tolerance") < 10:
        raise pytest.UsageError("--bench-tolerance must be within 0..10 (a fraction: 0.25 = +25 %)")
    # pytest-benchmark writes its JSON only when asked: always ask, to a temporary file; the
    # update hook below copies the document into the run directory.
    if not config.getoption("benchmark_json", None):
        fd, path = tempfile.mkstemp(prefix="benchmark-", suffix=".json")
        os.close(fd)
        config.option.benchmark_json = path
        config.stash[_TMP_KEY] = path



@pytest.fixture(scope="session", autouse=True)
def _bench_run_dir(pytestconfig: pytest.Config, run_dir: RunDir) -> RunDir:
    pytestconfig.stash[RUN_KEY] = run_dir
    return run_dir


def benchmark_records(document: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for b in document.get("benchmarks", []):
        stats = {k: b["stats"][k] for k in STAT_KEYS if k in b.get("stats", {})}
        out.append({"record": "benchmark", "name": b.get("name"), "fullname": b.get("fullname"),
                    "group": b.get("group"), "stats": stats, "params": b.get("params"),
                    "extra_info": b.get("extra_info") or {}})
    return out


def compare(current: list[dict[str, Any]], baseline: list[dict[str, Any]], tolerance: float,
            baseline_path: str) -> dict[str, Any]:
    """The ``benchmark_baseline`` record: each median against the baseline's, one verdict in all."""
    base = {b["fullname"]: b for b in baseline if b.get("stats", {}).get("median")}
    rows, regressed = [], []
    for b in current:
        old = base.get(b["fullname"])
        now = b["stats"].get("median")
        if old is None or now is None:
            rows.append({"benchmark": b["name"], "baseline_median_ms": None, "median_ms": now and now * 1000,
                         "change_pct": None, "verdict": "new"})
            continue
        change = now / old["stats"]["median"] - 1
        verdict = "regressed" if change > tolerance else "ok"
        rows.append({"benchmark": b["name"], "baseline_median_ms": round(old["stats"]["median"] * 1000, 4),
                     "median_ms": round(now * 1000, 4), "change_pct": round(change * 100, 1), "verdict": verdict})
        if verdict == "regressed":
            regressed.append(f"{b['name']} {old['stats']['median'] * 1000:.3g} -> {now * 1000:.3g} ms ({change:+.0%})")
    gone = sorted(set(base) - {b["fullname"] for b in current})
    compared = sum(1 for r in rows if r["verdict"] != "new")
    if regressed:
        v = Verdict("bench.baseline", Status.FAIL, f"{len(regressed)} benchmark(s) slower than the baseline by more "
                    f"than {tolerance:.0%}: " + "; ".join(regressed[:5]), {}, {"baseline": baseline_path})
    elif compared == 0:
        v = Verdict("bench.baseline", Status.UNKNOWN, f"no benchmark of this run is in the baseline {baseline_path}",
                    {}, {"baseline": baseline_path})
    else:
        v = Verdict("bench.baseline", Status.PASS, f"{compared} benchmark(s) within {tolerance:.0%} of the baseline",
                    {}, {"baseline": baseline_path})
    return {"record": "benchmark_baseline", "name": f"benchmarks vs {baseline_path}", "baseline": baseline_path,
            "tolerance": tolerance, "comparisons": rows, "missing_now": gone, "status": v.status.value,
            "verdicts": [v.to_dict()]}


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:  # no benchmark ran with the run directory (e.g. all skipped)
        return
    path = run.artifact_path("bench/benchmark.json")
    path.write_text(json.dumps(output_json, indent=2, default=str), encoding="utf-8")
    records = benchmark_records(output_json)
    for rec in records:
        rec["artifacts"] = {"pytest-benchmark json": run.relative(path)}
        run.append_record(rec)
    baseline = config.getoption("--bench-baseline")
    if baseline:
        base_records = list(RunDir(baseline).records("benchmark"))
        cmp = compare(records, base_records, config.getoption("--bench-tolerance"), str(baseline))
        run.append_record(cmp)
        config.stash[REGRESSED_KEY] = [r for r in cmp["comparisons"] if r["verdict"] == "regressed"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    regressed = session.config.stash.get(REGRESSED_KEY, [])
    if regressed and session.exitstatus == 0:
        session.exitstatus = 1
    tmp = session.config.stash.get(_TMP_KEY, None)
    if tmp:
        Path(tmp).unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for row in terminalreporter.config.stash.get(REGRESSED_KEY, []):
        terminalreporter.write_line(f"REGRESSION {row['benchmark']}: {row['baseline_median_ms']} -> "
                                    f"{row['median_ms']} ms ({row['change_pct']:+.1f} %)", red=True)


def measured(scenario: Any, benchmark: Any, name: str, **extra: Any) -> Verdict:
    """A scenario verdict that names the figure (benchmarks measure; they do not judge speed)."""
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is None or not stats.rounds:
        return scenario.check(Verdict(name, Status.UNKNOWN, f"{name}: no measurement (benchmarks disabled?)"))
    benchmark.extra_info.update(extra)
    text = f"median {stats.median * 1000:.3f} ms, min {stats.min * 1000:.3f}, max {stats.max * 1000:.3f} over {stats.rounds} round(s)"
    return scenario.check(Verdict(name, Status.PASS, f"{name}: {text}", {}, {"extra": extra} if extra else {}))
