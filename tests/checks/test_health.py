"""/health and /v1/stats against the harness's own counts."""

import pytest

from harness.checks.health import Snapshot, health
from harness.checks.verdict import Status


def hb(conn=0, sessions=0, **over):
    body = {"status": "ok", "version": "1", "engine": "scripted", "uptime_s": 3, "active_connections": conn,
            "active_sessions": sessions, "active_buffers": conn, "stalled_transactions": 0, "rss_bytes": 50_000_000}
    body.update(over)
    return body


def test_truthful_counts_pass():
    snaps = [Snapshot(1, hb(0, 0), connections=0, sessions=0), Snapshot(2, hb(3, 3), connections=3, sessions=3),
             Snapshot(3, hb(0, 0), connections=0, sessions=0)]
    v = health(snaps)
    assert v.status is Status.PASS and "6 count(s) matched" in v.message


def test_count_that_does_not_come_back_down_fails():
    snaps = [{"t_ns": 0, "body": hb(0), "connections": 0}, {"t_ns": 10**9, "body": hb(3), "connections": 3},
             {"t_ns": 2 * 10**9, "body": hb(3), "connections": 0}]
    v = health(snaps)
    assert v.status is Status.FAIL
    assert "active_connections is 3 at +2000 ms while the harness holds 0 open" in v.message
    assert "does not come back down" in v.message


def test_other_clients_form_a_baseline():
    snaps = [Snapshot(0, hb(2), connections=0), Snapshot(1, hb(5), connections=3), Snapshot(2, hb(2), connections=0)]
    assert health(snaps).status is Status.PASS
    snaps[1] = Snapshot(1, hb(4), connections=3)
    v = health(snaps)
    assert v.status is Status.FAIL and "undercounted" in v.message
    assert health(snaps, tolerance=1).status is Status.PASS


@pytest.mark.parametrize("value", ["N/A", 3.5, None, "3", True, -1])
def test_non_integers_fail_naming_the_field(value):
    v = health([Snapshot(0, hb(active_buffers=value))])
    assert v.status is Status.FAIL and f"active_buffers is {value!r}" in v.message


def test_missing_field_and_bad_status_fail():
    body = hb()
    del body["rss_bytes"]
    body["status"] = "fine"
    v = health([Snapshot(0, body)])
    assert "/health has no rss_bytes" in v.message and "status is 'fine'" in v.message


def test_stats_fields():
    stats = {"websocket_connections": 1, "sessions_created_total": 4, "sessions_failed_last_hour": 0,
             "avg_session_creation_ms": None, "p95_final_latency_ms": 120.5, "high_latency_warnings": 0,
             "alerts": [{"type": "stall", "severity": "warning", "count": 1, "last_occurrence": "x"}]}
    assert health([Snapshot(0, stats, endpoint="/v1/stats", connections=1)]).status is Status.PASS
    stats["avg_session_creation_ms"] = "N/A"
    stats["alerts"] = "none"
    v = health([Snapshot(0, stats, endpoint="/v1/stats")])
    assert v.status is Status.FAIL and "avg_session_creation_ms is 'N/A'" in v.message and "alerts" in v.message


def test_no_snapshot_is_unknown_and_a_malformed_one_raises():
    assert health([]).status is Status.UNKNOWN
    with pytest.raises(ValueError, match="lacks body"):
        health([{"t_ns": 1}])
