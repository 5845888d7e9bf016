"""Recovery after a fault window, added latency, and the session_success sample."""

from histbuild import add_fault, at, scripted_history, sort_records

from harness.checks import recovery
from harness.checks.session import session_success
from harness.checks.verdict import Status, Verdict
from harness.protocols.events import Ack


def test_recovery_time_is_fault_end_to_next_ack():
    h = scripted_history()
    add_fault(h, 900, 1100)  # acks every 250 ms: next one at 1250
    v = recovery.recovery(h)
    assert v.status is Status.PASS and v.metrics["recovery_ms"] == [150.0]
    assert recovery.recovery(h, limit_ms=100).status is Status.FAIL


def test_no_ack_after_the_fault_while_audio_flows_fails():
    h = scripted_history()
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] == "ack"
                                              and r.t_ns > at(1000))]
    add_fault(h, 900, 1100, kind="reset_peer")
    v = recovery.recovery(h)
    assert v.status is Status.FAIL and "reset_peer stream ended at +1100 ms" in v.message


def test_no_fault_is_unknown_and_an_open_window_is_ignored():
    assert recovery.recovery(scripted_history()).status is Status.UNKNOWN
    h = scripted_history()
    add_fault(h, 900, None)
    assert recovery.recovery(h).status is Status.UNKNOWN


def test_added_latency_against_the_fault_free_median():
    h = scripted_history(n_words=20, final_delay_ms=40)  # finals 40, 40, 40 ms, then 160 ms at finalize
    add_fault(h, 1400, 1600)  # segment 0's final (its audio ends at 1450 ms) is waited on during the fault
    v = recovery.added_latency(h)
    assert v.metrics["added_latency_ms"] == [0.0]
    final0 = next(r for r in h.records if r.kind == "event" and r.data["event"]["type"] == "final")
    final0.t_ns += 500 * 1_000_000
    h.add_event(Ack(1, 1), t_ns=at(1))
    sort_records(h)
    assert recovery.added_latency(h).metrics["added_latency_ms"] == [500.0]
    assert recovery.added_latency(h, baseline_ms=10.0).metrics["added_latency_ms"] == [530.0]
    assert recovery.added_latency(scripted_history()).status is Status.UNKNOWN


def test_session_success_sample():
    h = scripted_history()
    ok = Verdict("x", Status.PASS)
    assert session_success(h, [ok]).metrics == {"session_success": [1]}
    v = session_success(h, [ok, Verdict("integrity.duplicates", Status.FAIL)])
    assert v.status is Status.FAIL and v.metrics == {"session_success": [0]} and "integrity.duplicates" in v.message
    assert session_success(scripted_history(close_code=None), [ok]).metrics == {"session_success": [0]}
    assert session_success(h, [Verdict("y", Status.UNKNOWN)]).metrics == {"session_success": [1]}
