"""Stall detection: a pipeline held on purpose must show up as ``stalled`` in ``/debug/transactions``.

Input: snapshots ``{"t_ns", "body"}`` of ``GET /debug/transactions``, the held session's id, when
the hold began (monotonic ns, the harness's clock) and the server's ``stall_after_s``. The body is
read tolerantly: a list of transactions or ``{"transactions": [...]}``; a transaction names its
session in ``session_id`` (or ``id``) and its state in ``status`` (or ``state``), or carries
``stalled: true``.
"""

from __future__ import annotations

from typing import Any

from harness.checks._common import ns_to_ms, verdict
from harness.checks.verdict import Status, Verdict


def transactions(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        body = body.get("transactions", body.get("items", []))
    return [t for t in body or [] if isinstance(t, dict)]


def transaction_status(body: Any, session_id: str) -> str | None:
    """The session's transaction status in one snapshot, or None when it is not listed."""
    for t in transactions(body):
        if session_id in (t.get("session_id"), t.get("id")):
            if t.get("stalled") is True:
                return "stalled"
            return str(t.get("status", t.get("state", "")))
    return None


def stall_detected(
    snapshots: list[dict[str, Any]], session_id: str, held_since_ns: int, stall_after_s: float, grace_s: float = 3.0
) -> Verdict:
    """Passes once a snapshot shows the held session stalled; fails when one taken more than
    ``stall_after_s + grace_s`` after the hold began still does not; unknown before then."""
    name = "stall.detected"
    deadline_ns = held_since_ns + int((stall_after_s + grace_s) * 1e9)
    seen = []
    for snap in sorted(snapshots, key=lambda s: s["t_ns"]):
        status = transaction_status(snap["body"], session_id)
        after_s = round(ns_to_ms(snap["t_ns"] - held_since_ns) / 1000, 3)
        seen.append({"after_hold_s": after_s, "status": status})
        if status == "stalled":
            return verdict(
                name, Status.PASS,
                f"session {session_id}: marked stalled {after_s:.1f} s after the hold began (stall_after {stall_after_s:g} s)",
                {}, {"snapshots": seen},
            )
    late = [s for s in snapshots if s["t_ns"] >= deadline_ns]
    if late:
        last = seen[-1]
        state = "not listed" if last["status"] is None else f"still {last['status']!r}"
        return verdict(
            name, Status.FAIL,
            f"session {session_id}: held for {last['after_hold_s']:.1f} s with stall_after {stall_after_s:g} s, "
            f"{state} in /debug/transactions: the stall was never detected",
            {}, {"snapshots": seen},
        )
    return verdict(
        name, Status.UNKNOWN,
        f"session {session_id}: no /debug/transactions snapshot taken {stall_after_s + grace_s:g} s after the hold began",
        {}, {"snapshots": seen},
    )
