"""The checks of a fault survived by reconnecting as a new session, on hand-made histories."""

from __future__ import annotations

import pytest

from harness.checks import recovery
from harness.checks.reconnect import (
    Segment,
    fault_audio_windows,
    interrupted_sessions_closed,
    next_session_served,
    words_around_fault,
)
from harness.checks.verdict import Status
from harness.history import FaultWindow, History
from harness.protocols.events import Closed, Final, Partial

from histbuild import T0, at, sort_records

BASELINE = [Segment.of(0, 3000, "alpha bravo charlie"), Segment.of(4000, 7000, "delta echo foxtrot"),
            Segment.of(8000, 9000, "golf hotel")]
AUDIO_MS = 9000


def _send(h: History, from_ms: int, to_ms: int, t_offset_ms: float) -> None:
    for off_ms in range(from_ms, to_ms, 100):
        h.add("audio_sent", t_ns=at(off_ms + t_offset_ms), offset=off_ms * 32, length=min(100, to_ms - off_ms) * 32)


def history(finals: list[tuple[float, int, int, str]], cut_ms: int | None = None, resume_ms: int | None = None,
            reconnect: bool = True, fault_ms: float = 500) -> History:
    """One session at real time (a byte at offset t ms is sent at t ms). With ``cut_ms`` the
    connection is cut there (fault window of ``fault_ms``), and with ``reconnect`` a new
    connection sends from ``resume_ms`` on, 700 ms later than real time. ``finals``: (received
    at ms, start_ms, end_ms, text), in segment-id order."""
    h = History(session_id="dg-1", meta={"scenario": "unit", "audio_bytes": AUDIO_MS * 32}, t0_ns=T0)
    h.add("connected", t_ns=at(-5), attempt=0, latency_ms=5.0)
    if cut_ms is None:
        _send(h, 0, AUDIO_MS, 0)
    else:
        _send(h, 0, cut_ms, 0)
        h.faults.append(FaultWindow("reset_peer", {}, at(cut_ms), at(cut_ms + fault_ms), "toxiproxy"))
        h.add_event(Closed(1006), t_ns=at(cut_ms + 10))
        if reconnect:
            h.add("connected", t_ns=at(cut_ms + 600), attempt=1, latency_ms=5.0)
            _send(h, resume_ms or cut_ms, AUDIO_MS, 700)
    for k, (t, start, end, text) in enumerate(finals):
        h.add_event(Final(k, text, start, end), t_ns=at(t))
    h.add_event(Closed(1000), t_ns=at(AUDIO_MS + 2000))
    return sort_records(h)


CLEAN = [(3200, 0, 3000, "alpha bravo charlie"), (7300, 4000, 7000, "delta echo foxtrot"), (9300, 8000, 9000, "golf hotel")]
CUT_MID_SECOND = [(3200, 0, 3000, "alpha bravo charlie"), (7900, 4600, 7000, "echo foxtrot"),
                  (9900, 8000, 9000, "golf hotel")]


def test_no_fault_every_word_must_match_the_baseline():
    assert words_around_fault(history(CLEAN), BASELINE).status is Status.PASS
    changed = CLEAN[:2] + [(9300, 8000, 9000, "golf hotels")]
    v = words_around_fault(history(changed), BASELINE)
    assert v.status is Status.FAIL and "'hotel' -> 'hotels'" in v.message


def test_words_lost_inside_the_fault_window_are_counted_not_failed():
    h = history(CUT_MID_SECOND, cut_ms=4500, resume_ms=4600)
    assert fault_audio_windows(h, BASELINE) == [(3000.0, 7000.0)]  # last final's end .. the restart's segment end
    v = words_around_fault(h, BASELINE)
    assert v.status is Status.PASS, v.message
    assert v.metrics["fault_lost_words"] == [1] and v.metrics["fault_extra_words"] == [0]
    assert "1 of 3 baseline word(s) lost" in v.message


def test_a_word_lost_after_the_window_fails_and_is_named():
    finals = CUT_MID_SECOND[:2] + [(9900, 8000, 9000, "golf")]
    v = words_around_fault(history(finals, cut_ms=4500, resume_ms=4600), BASELINE)
    assert v.status is Status.FAIL
    assert "lost 'hotel'" in v.message and "1 lost" in v.message


def test_a_word_lost_before_the_fault_fails():
    finals = [(3200, 0, 3000, "alpha charlie")] + CUT_MID_SECOND[1:]
    v = words_around_fault(history(finals, cut_ms=4500, resume_ms=4600), BASELINE)
    assert v.status is Status.FAIL and "lost 'bravo'" in v.message


def test_a_connection_lost_with_no_successor_excuses_the_rest_of_the_audio():
    h = history(CLEAN[:1], cut_ms=4500, reconnect=False)
    assert fault_audio_windows(h, BASELINE) == [(3000.0, 9000.0)]
    v = words_around_fault(h, BASELINE)
    assert v.status is Status.PASS and v.metrics["fault_lost_words"] == [5]


def test_no_baseline_or_an_empty_one_is_unknown():
    assert words_around_fault(history(CLEAN), None).status is Status.UNKNOWN
    assert words_around_fault(history(CLEAN), []).status is Status.UNKNOWN


def test_sessions_left_open_fail_and_unread_ones_are_unknown():
    h = history(CLEAN)
    assert interrupted_sessions_closed(h, {"a": "completed", "b": "completed"}).status is Status.PASS
    v = interrupted_sessions_closed(h, {"a": "completed", "b": "streaming"})
    assert v.status is Status.FAIL and "b 'streaming'" in v.message
    assert interrupted_sessions_closed(h, {"a": "completed", "b": None}).status is Status.UNKNOWN
    assert interrupted_sessions_closed(h, {}).status is Status.UNKNOWN


def test_next_session_must_complete_with_words():
    h = history(CLEAN)
    ok = {"completed": True, "error": None, "close_code": 1000, "transcript": "let's move the meeting"}
    assert next_session_served(h, ok).status is Status.PASS
    v = next_session_served(h, {**ok, "completed": False, "error": "connect failed: refused"})
    assert v.status is Status.FAIL and "connect failed: refused" in v.message
    assert next_session_served(h, {**ok, "transcript": ""}).status is Status.FAIL
    assert next_session_served(h, None).status is Status.UNKNOWN


def test_recovery_without_acks_is_measured_to_the_next_result():
    h = history(CUT_MID_SECOND, cut_ms=4500, resume_ms=4600)
    h.add_event(Partial(1, "echo", 4600, 5000), t_ns=at(5800))
    sort_records(h)
    v = recovery.recovery(h, progress="result")
    assert v.status is Status.PASS and v.metrics["recovery_ms"] == [800.0]
    assert recovery.recovery(h).status is Status.FAIL  # no ack ever: what the ack-based measure says
    silent = history(CUT_MID_SECOND[:1], cut_ms=4500, resume_ms=4600)
    v = recovery.recovery(silent, progress="result")
    assert v.status is Status.FAIL and "no partial or final after the fault ended" in v.message
    with pytest.raises(ValueError, match="progress must be one of"):
        recovery.recovery(h, progress="acks")
