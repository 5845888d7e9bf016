"""Stall detection from /debug/transactions snapshots."""

from harness.checks.stall import stall_detected, transaction_status
from harness.checks.verdict import Status

S = 10**9


def snap(t_s, status, sid="s-1"):
    return {"t_ns": int(t_s * S), "body": {"transactions": [{"session_id": "other", "status": "active"},
                                                             {"session_id": sid, "status": status}]}}


def test_marked_stalled_passes():
    v = stall_detected([snap(1, "active"), snap(3.5, "stalled")], "s-1", held_since_ns=0, stall_after_s=2)
    assert v.status is Status.PASS and "3.5 s" in v.message


def test_never_marked_fails_once_past_the_deadline():
    v = stall_detected([snap(1, "active"), snap(6, "active")], "s-1", held_since_ns=0, stall_after_s=2)
    assert v.status is Status.FAIL and "still 'active'" in v.message and "never detected" in v.message


def test_too_early_is_unknown():
    assert stall_detected([snap(1, "active")], "s-1", held_since_ns=0, stall_after_s=2).status is Status.UNKNOWN


def test_missing_transaction_fails_late():
    v = stall_detected([snap(9, "active", sid="x")], "s-1", held_since_ns=0, stall_after_s=2)
    assert v.status is Status.FAIL and "not listed" in v.message


def test_body_shapes():
    assert transaction_status([{"id": "s-1", "state": "stalled"}], "s-1") == "stalled"
    assert transaction_status({"transactions": [{"session_id": "s-1", "stalled": True, "status": "x"}]}, "s-1") == "stalled"
    assert transaction_status({"transactions": []}, "s-1") is None
