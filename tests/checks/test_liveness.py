"""liveness.idle_close and liveness.keepalive_holds on hand-made histories."""

from __future__ import annotations

from harness.checks import liveness
from harness.checks.verdict import Status
from harness.history import History
from harness.protocols.events import Closed

S = 1_000_000_000  # ns per second


def stream(audio_at: list[float], keepalives_at: list[float] = (), close: tuple[float, int, str] | None = None,
           last_record_at: float | None = None) -> History:
    h = History(session_id="s1")
    for t in audio_at:
        h.add("audio_sent", t_ns=int(t * S), offset=0, length=3200)
    for t in keepalives_at:
        h.add("control_sent", t_ns=int(t * S), message="keepalive")
    if close is not None:
        h.add_event(Closed(close[1], close[2]), t_ns=int(close[0] * S))
    if last_record_at is not None:
        h.add("note", t_ns=int(last_record_at * S), text="observed")
    h.records.sort(key=lambda r: r.t_ns)
    return h


def test_idle_close_in_time_with_the_documented_code_passes() -> None:
    v = liveness.idle_close(stream([1.0], close=(16.2, 4408, "idle timeout")), limit_s=15, margin_s=5,
                            expected=(4408, ""))
    assert v.status is Status.PASS and v.metrics["idle_close_after_ms"] == 15200


def test_a_silent_stream_never_closed_fails() -> None:
    v = liveness.idle_close(stream([1.0], last_record_at=25.0), limit_s=15, margin_s=5)
    assert v.status is Status.FAIL and "never closed" in v.message


def test_an_idle_close_far_past_the_timeout_fails() -> None:
    v = liveness.idle_close(stream([1.0], close=(30.0, 4408, "")), limit_s=15, margin_s=5)
    assert v.status is Status.FAIL and "past the idle timeout" in v.message


def test_an_idle_close_with_another_code_fails() -> None:
    v = liveness.idle_close(stream([1.0], close=(11.0, 1011, "internal error")), limit_s=10, margin_s=5,
                            expected=(1011, "NET-0001"))
    assert v.status is Status.FAIL and "not the protocol's 1011 'NET-0001'" in v.message
    ok = liveness.idle_close(stream([1.0], close=(11.0, 1011, "NET-0001: no audio")), limit_s=10, margin_s=5,
                             expected=(1011, "NET-0001"))
    assert ok.status is Status.PASS


def test_keepalives_that_hold_past_the_twin_pass() -> None:
    v = liveness.keepalive_holds(stream([0.5, 1.0, 22.0], keepalives_at=[4, 7, 10, 13, 16, 19]), held_s=18)
    assert v.status is Status.PASS and v.metrics["keepalive_held_ms"] == 21000
    assert v.metrics["keepalive_interval_max_ms"] == 3000


def test_a_stream_closed_despite_keepalives_fails() -> None:
    v = liveness.keepalive_holds(stream([1.0], keepalives_at=[4, 7, 10, 13], close=(16.0, 4408, "idle")), held_s=18)
    assert v.status is Status.FAIL and "keepalives did not reset the idle timer" in v.message


def test_too_short_an_observation_is_unknown_not_pass() -> None:
    v = liveness.keepalive_holds(stream([1.0], keepalives_at=[4, 7], last_record_at=8.0), held_s=18)
    assert v.status is Status.UNKNOWN
    assert liveness.keepalive_holds(stream([1.0]), held_s=5).status is Status.UNKNOWN
