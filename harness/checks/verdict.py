"""Three-valued verdicts (Jepsen's ``:valid?``): pass, fail, or unknown.

``unknown`` means the check could not decide (too few samples, the run broke). It is never
counted as a pass by a gate.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass
class Verdict:
    """What a check concluded.

    ``name`` is the check (``integrity.duplicates``), ``message`` one line naming the symptom
    and the session, ``metrics`` the numbers it measured (lists of raw samples allowed, which
    SLOs judge), ``evidence`` what a person needs to see why (offsets, segment ids, texts).
    """

    name: str
    status: Status
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "metrics": self.metrics,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        return cls(
            name=data["name"],
            status=Status(data["status"]),
            message=data.get("message", ""),
            metrics=dict(data.get("metrics", {})),
            evidence=dict(data.get("evidence", {})),
        )


def combine(verdicts: list[Verdict]) -> Status:
    """fail if any failed, else unknown if any is unknown (or there are none), else pass."""
    if any(v.status is Status.FAIL for v in verdicts):
        return Status.FAIL
    if not verdicts or any(v.status is Status.UNKNOWN for v in verdicts):
        return Status.UNKNOWN
    return Status.PASS


def check_name(check: Callable[..., Any]) -> str:
    """``integrity.segments`` for ``harness.checks.integrity.segments`` (and for a partial of it)."""
    while isinstance(check, functools.partial):
        check = check.func
    module = getattr(check, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{getattr(check, '__name__', type(check).__name__)}"


def safe_check(check: Callable[..., Verdict], *args: Any, **kwargs: Any) -> Verdict:
    """``check(*args, **kwargs)``, or, when it raises (or returns something else than a Verdict),
    one ``unknown`` verdict naming the check and the exception: a broken check never hides the
    others (Jepsen's ``check-safe``) and never passes."""
    name = check_name(check)
    try:
        result = check(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception becomes the verdict, with where it came from
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Verdict(name, Status.UNKNOWN, f"the check {name} raised {type(exc).__name__}: {exc}",
                       evidence={"exception": type(exc).__name__, "message": str(exc),
                                 "at": f"{where.filename}:{where.lineno} in {where.name}"})
    if not isinstance(result, Verdict):
        return Verdict(name, Status.UNKNOWN, f"the check {name} returned {type(result).__name__}, not a Verdict")
    return result
