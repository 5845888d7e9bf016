"""The ``session_success`` rate sample: did this session end normally with no failing check?"""

from __future__ import annotations

from harness.checks._common import session_label, short, verdict
from harness.checks.verdict import Status, Verdict
from harness.history import History


def completed(history: History) -> bool:
    """The session ended as PROTOCOL.md's happy path does: a close 1000, or a driver-recorded
    ``meta.final_state`` of ``completed``."""
    if history.meta.get("final_state") == "completed":
        return True
    return any(getattr(e, "code", None) == 1000 for _, e in history.events("closed"))


def session_success(history: History, verdicts: list[Verdict], require_completed: bool = True) -> Verdict:
    """1 when the session completed and none of ``verdicts`` failed, else 0 (``session_success``).

    ``unknown`` verdicts do not make the session a failure here; they keep their own status in the
    scenario, which is what gates the run.
    """
    name, who = "session.success", session_label(history)
    failed = [v.name for v in verdicts if v.status is Status.FAIL]
    ended = completed(history) or not require_completed
    ok = ended and not failed
    metrics = {"session_success": [1 if ok else 0]}
    if ok:
        return verdict(name, Status.PASS, f"{who}: completed", metrics)
    why = ([] if ended else ["never completed (no close 1000)"]) + ([f"failed {short(failed, 4)}"] if failed else [])
    return verdict(name, Status.FAIL, f"{who}: " + "; ".join(why), metrics, {"failed_checks": failed})
