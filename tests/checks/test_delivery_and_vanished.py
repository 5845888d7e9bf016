"""The two checks for defects the harness was never told about: a final delivered twice on one
connection, and a session still counted after its client vanished without finalize."""

from __future__ import annotations

from histbuild import at, scripted_history

from harness.checks import delivery, health
from harness.checks.health import Snapshot
from harness.checks.verdict import Status
from harness.history import History
from harness.protocols.events import Final


def test_a_healthy_session_delivers_each_final_once() -> None:
    v = delivery.finals_once_per_connection(scripted_history(n_words=12))
    assert v.status is Status.PASS, v.message


def test_the_same_segment_twice_on_one_connection_fails() -> None:
    h = scripted_history(n_words=10)
    first = h.finals()[0][1]
    h.add_event(first, t_ns=h.finals()[-1][0] + 1)  # the server sends segment 0 again, same connection
    v = delivery.finals_once_per_connection(h)
    assert v.status is Status.FAIL
    assert "segment 0" in v.message and "on connection 0" in v.message and "delivered twice" in v.message


def test_a_replay_on_a_new_connection_is_not_a_double_delivery() -> None:
    h = scripted_history(n_words=10)
    first = h.finals()[0][1]
    end = h.records[-1].t_ns
    h.add("connect", t_ns=end + 1, attempt=1, url="ws://127.0.0.1/v1/stream", last_segment_id=-1)
    h.add_event(first, t_ns=end + 2)  # replayed after a reconnect: allowed, once
    assert delivery.finals_once_per_connection(h).status is Status.PASS
    h.add_event(first, t_ns=end + 3)  # ... but twice on that connection is not
    v = delivery.finals_once_per_connection(h)
    assert v.status is Status.FAIL and "connection 1" in v.message


def _no_id_history(*finals: Final) -> History:
    h = History(session_id="dg-1", meta={"scenario": "unit"}, t0_ns=at(0))
    h.add("connect", t_ns=at(1), attempt=0, url="ws://127.0.0.1/v1/listen", last_segment_id=None)
    for i, f in enumerate(finals):
        h.add_event(f, t_ns=at(100 + i * 100))
    return h


def test_without_segment_ids_the_same_text_and_times_twice_fails() -> None:
    # a codec that numbers finals itself gives the doubled one a new id: only text and times tell
    h = _no_id_history(Final(0, "hello there", 0, 900), Final(1, "general kenobi", 900, 1800),
                       Final(2, "hello there", 0, 900))
    assert delivery.finals_once_per_connection(h, segment_ids=True).status is Status.PASS  # ids hide it
    v = delivery.finals_once_per_connection(h, segment_ids=False)
    assert v.status is Status.FAIL and "'hello there'" in v.message and "0-900 ms" in v.message


def test_without_segment_ids_empty_finals_and_new_times_pass() -> None:
    h = _no_id_history(Final(0, "", 0, 500), Final(1, "", 0, 500), Final(2, "hello", 500, 900),
                       Final(3, "hello", 900, 1300))  # the same word said again later is not a double
    assert delivery.finals_once_per_connection(h, segment_ids=False).status is Status.PASS


def test_no_connection_is_unknown() -> None:
    h = History(session_id="x", meta={}, t0_ns=at(0))
    assert delivery.finals_once_per_connection(h).status is Status.UNKNOWN


def _snap(connections: int, sessions: int) -> Snapshot:
    return Snapshot(t_ns=0, body={"active_connections": connections, "active_sessions": sessions})


def test_a_vanished_client_let_go_passes() -> None:
    assert health.vanished_client(_snap(2, 3), _snap(2, 3), ends_on_drop=True).status is Status.PASS
    v = health.vanished_client(_snap(2, 3), _snap(2, 4), ends_on_drop=False, session_state="interrupted")
    assert v.status is Status.PASS and "interrupted" in v.message  # a resumable session may wait


def test_a_session_still_counted_after_its_client_vanished_fails() -> None:
    v = health.vanished_client(_snap(2, 3), _snap(2, 4), ends_on_drop=True, waited_s=20)
    assert v.status is Status.FAIL
    assert "active_sessions is still 4 20 s after the client went silent (before the session: 3)" in v.message


def test_a_connection_never_closed_or_a_session_still_streaming_fails() -> None:
    v = health.vanished_client(_snap(1, 1), _snap(2, 2), ends_on_drop=False, session_state="streaming")
    assert v.status is Status.FAIL
    assert "active_connections is still 2" in v.message and "still 'streaming'" in v.message


def test_non_integer_counts_fail() -> None:
    v = health.vanished_client({"t_ns": 0, "body": {"active_connections": "N/A"}}, _snap(0, 0), ends_on_drop=False)
    assert v.status is Status.FAIL and "not an integer" in v.message
