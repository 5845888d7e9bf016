"""The run's verdict and exit status: fail beats unknown beats pass, and unknown never passes.

Exit status: 0 only when every scenario passed, every SLO passed and every planted defect of a
self-test was caught; 1 otherwise, with a message per reason. A run with nothing to judge is
``unknown`` (a gate that saw nothing must not go green).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.checks.verdict import Status
from harness.report.model import RunData
from harness.slo import SLOResult

EXIT_PASS, EXIT_FAIL = 0, 1


@dataclass
class Gate:
    status: Status
    reasons: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.status is Status.PASS else EXIT_FAIL


def _names(keys: list[str], limit: int = 5) -> str:
    return ", ".join(keys[:limit]) + (f" … and {len(keys) - limit} more" if len(keys) > limit else "")


def judge(data: RunData, slo_results: list[SLOResult], slo_error: str | None = None) -> Gate:
    failed = [i.key for i in data.items if i.status is Status.FAIL]
    unknown = [i.key for i in data.items if i.status is Status.UNKNOWN]
    slo_failed = [r.name for r in slo_results if r.status is Status.FAIL]
    slo_unknown = [r.name for r in slo_results if r.status is Status.UNKNOWN]
    selftest = data.of_kind("selftest")
    missed = [r.get("defect", "?") for r in selftest if not r.get("counted", r.get("caught")) and not r.get("harness_error")]
    broken = [r.get("defect", "?") for r in selftest if r.get("harness_error")]

    fails, unknowns = [], []
    if failed:
        fails.append(f"{len(failed)} scenario(s) failed: {_names(failed)}")
    if slo_failed:
        fails.append(f"{len(slo_failed)} SLO(s) not met: {_names(slo_failed)}")
    if missed:
        fails.append(f"{len(missed)} planted defect(s) not caught: {_names(missed)}")
    if unknown:
        unknowns.append(f"{len(unknown)} scenario(s) unknown (too few samples or a harness error): {_names(unknown)}")
    if slo_unknown:
        unknowns.append(f"{len(slo_unknown)} SLO(s) unknown (too few samples): {_names(slo_unknown)}")
    if broken:
        unknowns.append(f"self-test could not run for: {_names(broken)}")
    if slo_error:
        unknowns.append(f"SLOs not evaluated: {slo_error}")
    if not data.items and not selftest:
        unknowns.append("nothing was judged: the run has no scenario results")
    if fails:
        return Gate(Status.FAIL, fails + unknowns)
    if unknowns:
        return Gate(Status.UNKNOWN, unknowns + ["unknown fails the gate: it never passes silently"])
    n = len(data.items)
    return Gate(Status.PASS, [f"{n} scenario(s) and {len(slo_results)} SLO(s) passed"
                              + (f"; {len(selftest)} planted defect(s) caught" if selftest else "")])


def counts(data: RunData) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Per status overall, and per suite per status."""
    total = {s.value: 0 for s in Status}
    suites: dict[str, dict[str, int]] = {}
    for item in data.items:
        total[item.status.value] += 1
        suites.setdefault(item.suite, {s.value: 0 for s in Status})[item.status.value] += 1
    total["total"] = len(data.items)
    return total, suites


def summary(data: RunData, gate: Gate, slo_results: list[SLOResult], slo_info: dict[str, Any],
            environment: dict[str, Any], changes: dict[str, Any] | None, generated_at: str) -> dict[str, Any]:
    """The ``summary.json`` document: what a CI job or a dashboard reads instead of the HTML."""
    total, suites = counts(data)
    out: dict[str, Any] = {
        "verdict": gate.status.value,
        "exit_code": gate.exit_code,
        "reasons": gate.reasons,
        "counts": total,
        "suites": suites,
        "slo": {**slo_info, "results": [r.to_dict() for r in slo_results]},
        "scenarios": [
            {"suite": i.suite, "scenario": i.name, "status": i.status.value, "duration_s": i.duration_s,
             "messages": i.messages()}
            for i in data.items
        ],
        "run": {"path": str(data.path), **data.info},
        "environment": environment,
        "generated_at": generated_at,
    }
    selftest = data.of_kind("selftest")
    if selftest:
        out["selftest"] = {
            "defects": len(selftest),
            "caught": sum(1 for r in selftest if r.get("counted", r.get("caught"))),
            "missed": [r.get("defect") for r in selftest if not r.get("counted", r.get("caught"))],
        }
    if changes is not None:
        out["changes_since_baseline"] = changes
    return out
