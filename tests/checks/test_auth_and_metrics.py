"""conformance.wrong_key_refused and health.metrics_match_stats on hand-made inputs."""

from __future__ import annotations

from harness.checks import conformance, health
from harness.checks.verdict import Status
from harness.history import History
from harness.protocols.events import Ack, Closed, Final

STATS = {"websocket_connections": 1, "sessions_created_total": 7, "sessions_failed_last_hour": 0,
         "high_latency_warnings": 0}
METRICS = """# HELP x_websocket_connections open streams
# TYPE x_websocket_connections gauge
x_websocket_connections 1.0
# TYPE x_sessions_created_total counter
x_sessions_created_total 8.0
x_sessions_failed_last_hour 0.0
x_high_latency_warnings_total 0.0
"""


def test_refused_at_creation_or_handshake_passes() -> None:
    h = History()
    h.add("http", method="POST", path="/v1/sessions", status=401, latency_ms=1.0, error=None)
    assert conformance.wrong_key_refused(h).status is Status.PASS
    h = History()
    h.add("connect_failed", attempt=0, error="HTTP 401", status=401)
    assert conformance.wrong_key_refused(h).status is Status.PASS
    h = History()
    h.add("connected", attempt=0, latency_ms=1.0)
    h.add_event(Closed(1008, "not authorized"))
    assert conformance.wrong_key_refused(h).status is Status.PASS


def test_a_wrong_key_that_is_served_fails() -> None:
    h = History()
    h.add("http", method="POST", path="/v1/sessions", status=201, latency_ms=1.0, error=None)
    assert conformance.wrong_key_refused(h).status is Status.FAIL
    h = History()
    h.add("connected", attempt=0, latency_ms=1.0)
    h.add_event(Ack(3200, 0))
    h.add_event(Final(0, "alpha", 0, 300))
    h.add_event(Closed(1000))
    v = conformance.wrong_key_refused(h)
    assert v.status is Status.FAIL and "was served" in v.message
    h = History()
    h.add("connected", attempt=0, latency_ms=1.0)
    assert "left open" in conformance.wrong_key_refused(h).message
    h = History()
    h.add("connect_failed", attempt=0, error="ConnectionRefusedError", status=None)
    assert conformance.wrong_key_refused(h).status is Status.FAIL


def test_metrics_between_two_stats_answers_pass() -> None:
    v = health.metrics_match_stats(STATS, METRICS, {**STATS, "sessions_created_total": 9})
    assert v.status is Status.PASS, v.message


def test_metrics_that_disagree_or_miss_a_figure_fail() -> None:
    v = health.metrics_match_stats(STATS, METRICS, STATS)  # created_total 8 while stats said 7 then 7
    assert v.status is Status.FAIL and "x_sessions_created_total is 8" in v.message
    v = health.metrics_match_stats(STATS, METRICS.replace("x_high_latency_warnings_total 0.0\n", ""), STATS)
    assert v.status is Status.FAIL and "no sample for high_latency_warnings" in v.message
    v = health.metrics_match_stats(STATS, "this is { not prometheus", STATS)
    assert v.status is Status.FAIL
