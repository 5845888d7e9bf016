"""Relay checks on hand-made client histories and vendor legs: each passes a healthy relay and
fails the planted relay defect it exists for, naming the symptom."""

from __future__ import annotations

import pytest

from harness.checks import relay
from harness.checks.integrity import expected_scripted_words
from harness.checks.verdict import Status
from harness.history import FaultWindow, History
from harness.protocols.events import Closed, Final
from harness.vendorleg import AudioLog, VendorConnection, VendorLeg

MS = 1_000_000
CHUNK = 3200  # 100 ms
SCRIPT = "alpha bravo charlie delta echo"


def client(t0: int = 0, frames: int = 50, every_ms: int = 100, start_ms: int = 0, sid: str = "s-1",
           pause: tuple[int, int] | None = None) -> History:
    """A client that sent ``frames`` chunks every ``every_ms`` from ``start_ms`` (skipping a pause)."""
    h = History(session_id=sid, t0_ns=t0)
    t, offset = start_ms, 0
    for _ in range(frames):
        if pause and pause[0] <= t < pause[1]:
            t = pause[1]
        h.add("audio_sent", t_ns=t * MS, offset=offset, length=CHUNK)
        offset += CHUNK
        t += every_ms
    return h


def conn(conn_id: str, opened_ms: int, closed_ms: int | None, frame_ms: list[int], *, tag: str = "s-1",
         size: int = CHUNK, **kw) -> VendorConnection:
    frames = [(t * MS, size) for t in frame_ms]
    audio = AudioLog(frames=frames, total_frames=len(frames), total_bytes=size * len(frames))
    return VendorConnection(conn_id=conn_id, protocol="deepgram", tag=tag, opened_ns=opened_ms * MS,
                            closed_ns=None if closed_ms is None else closed_ms * MS, audio=audio, **kw)


def add_finals(h: History, words: list[str], t_ms: int) -> None:
    for i, w in enumerate(words):
        h.add_event(Final(i, w, i * 300, i * 300 + 300), t_ns=(t_ms + i) * MS)


# --- correlation ----------------------------------------------------------------------------------
def test_connections_correlate_by_tag_or_by_time():
    h = client()
    leg = VendorLeg([conn("a", 1, 6000, [], tag="s-1"), conn("b", 2, 6000, [], tag="other"),
                     conn("c", 90_000, None, [], tag=None)])
    assert [c.conn_id for c in relay.session_connections(leg, h, "tag")] == ["a"]
    assert [c.conn_id for c in relay.session_connections(leg, h, "time")] == ["a", "b"]
    with pytest.raises(ValueError, match="unknown correlation 'bytes'"):
        relay.session_connections(leg, h, "bytes")
    assert relay.one_vendor_connection(h, []).status is Status.UNKNOWN


# --- one connection -------------------------------------------------------------------------------
def test_one_connection_passes_and_a_reconnect_is_not_a_second_one():
    h = client()
    assert relay.one_vendor_connection(h, [conn("a", 0, 5000, [])]).status is Status.PASS
    assert relay.one_vendor_connection(h, [conn("a", 0, 2000, []), conn("b", 2100, 5000, [])]).status is Status.PASS


def test_two_connections_open_together_fail_naming_both_open_times():
    h = client()
    v = relay.one_vendor_connection(h, [conn("a", 5, 5000, []), conn("b", 7, 5000, []),
                                        conn("r", 8, 9, [], handshake_status=429)])
    assert v.status is Status.FAIL
    assert "2 vendor connections open at once" in v.message
    assert "a opened at 5 ms and b opened at 7 ms" in v.message


# --- continuity -----------------------------------------------------------------------------------
def test_audio_forwarded_as_it_comes_is_continuous():
    h = client(frames=50)
    c = conn("a", 0, 6000, [t + 3 for t in range(0, 5000, 100)])
    v = relay.audio_continuity(h, [c])
    assert v.status is Status.PASS, v.message
    assert v.metrics["largest_gap_ms"] == 100.0 and v.metrics["vendor_rate"] == 1.0


def test_bursts_every_500_ms_fail_as_gaps():
    h = client(frames=50)
    frames = [t for t in range(500, 5500, 500) for _ in range(5)]  # 5 chunks at once every 500 ms
    v = relay.audio_continuity(h, [conn("a", 0, 6000, frames)])
    assert v.status is Status.FAIL
    assert "gap of 500 ms in the audio reaching the vendor" in v.message and "bursts" in v.message


def test_a_pause_of_the_client_is_not_the_relays_gap():
    h = client(frames=40, pause=(1000, 3000))
    frames = [r.t_ns // MS + 2 for r in h.of_kind("audio_sent")]
    v = relay.audio_continuity(h, [conn("a", 0, 6000, frames)])
    assert v.status is Status.PASS, v.message


def test_a_vendor_that_falls_behind_fails_the_rate():
    h = client(frames=50)
    frames = [t * 2 for t in range(0, 5000, 100)]  # half speed: gaps of 200 ms, but half the audio late
    v = relay.audio_continuity(h, [conn("a", 0, 20000, frames)])
    assert v.status is Status.FAIL and "falls behind real time" in v.message


def test_every_byte_delivered_or_the_loss_is_named():
    h = client(frames=10)
    assert relay.audio_delivered(h, [conn("a", 0, 2000, list(range(10)))]).status is Status.PASS
    v = relay.audio_delivered(h, [conn("a", 0, 2000, list(range(7)))])
    assert v.status is Status.FAIL and "9600 bytes = 300 ms lost" in v.message
    v = relay.audio_delivered(h, [conn("a", 0, 2000, list(range(12)))])
    assert v.status is Status.FAIL and "doubled" in v.message


def test_the_client_gets_the_final_words_the_vendor_sent_across_a_reconnect():
    h = client(frames=60)
    a = conn("a", 0, 3000, [], results=[(100 * MS, False, "alpha"), (200 * MS, True, "alpha bravo")])
    b = conn("b", 3100, 7000, [], results=[(3200 * MS, True, "alpha")])
    add_finals(h, ["alpha", "bravo", "alpha"], 7000)
    assert relay.relayed_transcript(h, [a, b]).status is Status.PASS
    h2 = client(frames=60)
    add_finals(h2, ["alpha", "bravo", "alpha", "bravo", "alpha"], 7000)  # the first final forwarded twice
    v = relay.relayed_transcript(h2, [a, b])
    assert v.status is Status.FAIL and "the client got 5 final words, the vendor sent 3" in v.message
    assert "first difference at word 3" in v.message
    stalled = conn("a", 0, 3000, [], results=[(200 * MS, True, "alpha"), (900 * MS, True, "bravo")])
    h3 = client(frames=60)
    add_finals(h3, ["alpha", "alpha"], 7000)  # "bravo" was swallowed by the stall, before the relay
    stall = FaultWindow("ws_stall", {}, 500 * MS, 3100 * MS)
    assert relay.relayed_transcript(h3, [stalled, b], [stall]).status is Status.PASS
    assert relay.relayed_transcript(h3, [stalled, b]).status is Status.FAIL


def test_scripted_words_for_every_byte_once():
    h = client(frames=30)  # 96000 bytes -> 10 words
    add_finals(h, expected_scripted_words(SCRIPT, 96000), 4000)
    assert relay.scripted_words(h, [conn("a", 0, 4000, [])], SCRIPT).status is Status.PASS
    h2 = client(frames=30)
    add_finals(h2, expected_scripted_words(SCRIPT, 32000) + expected_scripted_words(SCRIPT, 64000), 4000)
    v = relay.scripted_words(h2, [conn("a", 0, 4000, []), conn("b", 0, 4000, [])], SCRIPT)  # audio split in two
    assert v.status is Status.FAIL and "should hear 10 words and heard 9" in v.message


# --- keepalive ------------------------------------------------------------------------------------
def test_keepalive_keeps_the_connection_through_silence():
    h = client(frames=20, pause=(1000, 8000))
    c = conn("a", 0, 12000, [], controls=[(4000 * MS, "KeepAlive"), (7000 * MS, "KeepAlive")])
    v = relay.keepalive_in_silence(h, [c], [(1000 * MS, 8000 * MS)], vendor_timeout_s=4)
    assert v.status is Status.PASS and v.metrics["keepalives"] == 2


def test_a_vendor_timeout_in_silence_fails_as_no_keepalive():
    h = client(frames=20, pause=(1000, 8000))
    dead = conn("a", 0, 5000, [], close_code=1011, close_reason="NET-0001")
    again = conn("b", 8000, 12000, [])
    v = relay.keepalive_in_silence(h, [dead, again], [(1000 * MS, 8000 * MS)], vendor_timeout_s=4)
    assert v.status is Status.FAIL
    assert "the vendor closed a 1011 'NET-0001' after 4.0 s of client silence (0 KeepAlive" in v.message
    assert "no keepalive during silence" in v.message
    assert relay.keepalive_in_silence(h, [again], [(1000 * MS, 2000 * MS)], 4).status is Status.UNKNOWN


# --- recovery -------------------------------------------------------------------------------------
def _fault_run(reconnect_at_ms: int | None) -> tuple[History, list[VendorConnection], FaultWindow]:
    h = client(frames=60)  # 0..5900 ms
    a = conn("a", 0, 2000, list(range(0, 2000, 100)), close_code=1011, close_reason="NET-0000")
    conns = [a]
    if reconnect_at_ms is not None:
        held = [reconnect_at_ms] * ((reconnect_at_ms - 2000) // 100)  # what came in the outage, flushed
        conns.append(conn("b", reconnect_at_ms, 7000, held + list(range(reconnect_at_ms, 6000, 100))))
    fault = FaultWindow("vendor-close", {"code": 1011}, 1990 * MS, 2000 * MS)
    add_finals(h, ["alpha"] * 15, 6500)
    return h, conns, fault


def test_a_reconnect_within_the_bound_recovers_and_the_loss_is_measured():
    h, conns, fault = _fault_run(2300)
    v = relay.fault_recovery(h, conns, fault, SCRIPT, reconnect_within_s=2)
    assert v.status is Status.PASS, v.message
    assert v.metrics["reconnect_delay_ms"] == 310.0 and v.metrics["lost_bytes"] == 0  # from the fault's start
    assert v.metrics["clean_words"] == 20 and v.metrics["words_lost"] == 5


def test_no_reconnect_fails_naming_the_audio_lost_after_the_drop():
    h, conns, fault = _fault_run(None)
    v = relay.fault_recovery(h, conns, fault, SCRIPT)
    assert v.status is Status.FAIL
    assert "dropped (1011 'NET-0000')" in v.message and "was not reconnected" in v.message
    assert "3.9 s of the client's audio after the drop never reached the vendor" in v.message


def test_a_slow_reconnect_fails_the_bound():
    h, conns, fault = _fault_run(4500)
    v = relay.fault_recovery(h, conns, fault, SCRIPT, reconnect_within_s=2)
    assert v.status is Status.FAIL and "reconnected only 2.5 s after the fault" in v.message


def test_refused_handshakes_retried_with_backoff_pass_and_a_hot_loop_fails():
    h = client(frames=20)
    backoff = [conn(f"r{i}", t, t + 1, [], handshake_status=429) for i, t in enumerate((0, 200, 600, 1400))]
    ok = relay.handshake_backoff(h, backoff + [conn("a", 3000, 5000, [])])
    assert ok.status is Status.PASS and ok.metrics["refused"] == 4 and ok.metrics["connected_after_ms"] == 3000.0
    hot = [conn(f"r{i}", i * 10, i * 10 + 1, [], handshake_status=429) for i in range(40)]
    v = relay.handshake_backoff(h, hot + [conn("a", 400, 5000, [])])
    assert v.status is Status.FAIL and "a hot retry loop" in v.message
    v = relay.handshake_backoff(h, backoff)
    assert v.status is Status.FAIL and "the client was not told" in v.message
    assert relay.handshake_backoff(h, [conn("a", 0, 10, [])]).status is Status.UNKNOWN


# --- finalize -------------------------------------------------------------------------------------
def _finalized(close_after_final: bool, close_stream: bool = True) -> tuple[History, VendorConnection]:
    h = client(frames=10)
    h.add("control_sent", t_ns=1100 * MS, message="close_stream")
    h.add_event(Final(0, "alpha", 0, 300), t_ns=(1300 if close_after_final else 1500) * MS)
    h.add_event(Closed(1000, ""), t_ns=1400 * MS)
    c = conn("a", 0, 1450, list(range(0, 1000, 100)), results=[(1290 * MS, True, "alpha")],
             controls=[(1110 * MS, "CloseStream")] if close_stream else [])
    return h, c


def test_finalize_sends_closestream_and_the_last_final_comes_before_the_close():
    h, c = _finalized(True)
    assert relay.finalize_closes_stream(h, [c]).status is Status.PASS


def test_finalize_fails_when_the_close_beats_the_last_final_or_no_closestream_is_sent():
    h, c = _finalized(False)
    v = relay.finalize_closes_stream(h, [c])
    assert v.status is Status.FAIL and "did not reach the client before the relay closed" in v.message
    h, c = _finalized(True, close_stream=False)
    v = relay.finalize_closes_stream(h, [c])
    assert v.status is Status.FAIL and "no CloseStream reached the vendor" in v.message


# --- memory, health, key --------------------------------------------------------------------------
def test_memory_growth_is_a_slope_per_minute():
    flat = [(i * 500 * MS, 50_000_000 + (i % 3) * 100_000) for i in range(40)]
    assert relay.memory_growth(flat, max_mb_per_min=2, audio_s=20).status is Status.PASS
    growing = [(i * 500 * MS, 50_000_000 + i * 100_000) for i in range(40)]  # 0.1 MB per 0.5 s = 12 MB/min
    v = relay.memory_growth(growing, max_mb_per_min=2, audio_s=20)
    assert v.status is Status.FAIL and "grew 12.0 MB/min" in v.message
    assert relay.memory_growth(flat[:3], 2, 20).status is Status.UNKNOWN


def test_health_must_be_an_integer_that_matches_the_open_connections():
    leg = VendorLeg([conn("a", 0, 5000, []), conn("b", 6000, None, [])])
    good = [(1000 * MS, 1), (5500 * MS, 0), (7000 * MS, 1)]
    assert relay.health_matches(good, leg).status is Status.PASS
    v = relay.health_matches([(1000 * MS, "N/A")], leg)
    assert v.status is Status.FAIL and "vendor_connections='N/A' (not an integer)" in v.message
    v = relay.health_matches([(5500 * MS, 1)], leg)  # never decremented
    assert v.status is Status.FAIL and "vendor_connections=1 while 0 vendor connection(s) were open" in v.message


def test_the_vendor_key_must_not_reach_the_client():
    h = client(frames=2)
    assert relay.no_key_to_client(h, "sekrit-key", ['{"status": "ok"}']).status is Status.PASS
    h.add("event", t_ns=5 * MS, event={"type": "info", "name": "Metadata", "data": {"url": "wss://x?key=sekrit-key"}})
    v = relay.no_key_to_client(h, "sekrit-key", ['{"token": "sekrit-key"}'])
    assert v.status is Status.FAIL and "event record at 5 ms" in v.message and "response 0" in v.message


def test_a_stall_counts_from_the_fault_not_from_the_relays_own_close():
    h = client(frames=60)
    stalled = conn("a", 0, 4600, list(range(0, 4600, 100)), close_code=4000, close_reason="stalled")
    again = conn("b", 4700, 7000, list(range(4700, 6000, 100)))
    fault = FaultWindow("ws_stall", {}, 1500 * MS, 4700 * MS)
    v = relay.fault_recovery(h, [stalled, again], fault, SCRIPT, reconnect_within_s=5)
    assert v.status is Status.PASS and v.metrics["reconnect_delay_ms"] == 3200.0
    v = relay.fault_recovery(h, [stalled, again], fault, SCRIPT, reconnect_within_s=3)
    assert v.status is Status.FAIL and "reconnected only 3.2 s after the fault" in v.message


# --- nobody in who does not belong ----------------------------------------------------------------
def refused(status: int | None) -> History:
    h = History(session_id=None, t0_ns=0)
    h.add("connect", t_ns=1 * MS, attempt=0, url="ws://127.0.0.1:9/v1/listen")
    h.add("connect_failed", t_ns=3 * MS, attempt=0, error=f"HTTP {status}", status=status)
    return h


def let_in(words: list[str], close_code: int = 1000) -> History:
    h = client(frames=10, sid="intruder")
    h.add("connected", t_ns=0, attempt=0, latency_ms=1.0)
    add_finals(h, words, 1200)
    h.add_event(Closed(close_code, ""), t_ns=1500 * MS)
    return h


def test_an_intruder_refused_with_401_and_no_vendor_connection_passes():
    v = relay.intruder_refused(refused(401), [], "a client without credentials")
    assert v.status is Status.PASS, v.message
    assert v.metrics["handshake_status"] == 401 and v.metrics["vendor_connections"] == 0
    closed_at_once = let_in([], close_code=4001)  # refused after the upgrade, before any result
    assert relay.intruder_refused(closed_at_once, []).status is Status.PASS


def test_an_intruder_let_in_fails_naming_the_words_and_the_vendor_connection():
    h = let_in(["alpha", "bravo"])
    v = relay.intruder_refused(h, [conn("x", 10, 1400, list(range(10, 1000, 100)), tag="intruder")],
                               "a client without credentials")
    assert v.status is Status.FAIL
    assert "a client without credentials was let in: the handshake answered 101" in v.message
    assert "heard 2 transcript words ('alpha bravo'" in v.message
    assert "opened 1 vendor connection(s) for it and streamed 32000 bytes on its vendor key" in v.message


def test_an_intruder_refused_with_the_wrong_status_fails():
    v = relay.intruder_refused(refused(500), [], "a client with another session's token")
    assert v.status is Status.FAIL and "refused with 500" in v.message and "not 401 or 403" in v.message
    assert relay.intruder_refused(refused(None), []).status is Status.FAIL
    assert relay.intruder_refused(History(), []).status is Status.UNKNOWN


def two_sessions(heard_a: list[str], heard_b: list[str]) -> tuple[History, History]:
    a, b = client(frames=20, sid="s-a"), client(frames=30, sid="s-b")
    add_finals(a, heard_a, 3000)
    add_finals(b, heard_b, 4000)
    return a, b


SCRIPT_A, SCRIPT_B = "alpha bravo charlie delta", "one two three four"


def test_sessions_that_keep_to_their_own_audio_are_isolated():
    a, b = two_sessions(["alpha", "bravo"], ["one", "two", "three"])
    ca = conn("a", 0, 3000, list(range(20)), tag="s-a", results=[(900 * MS, True, "alpha bravo")])
    cb = conn("b", 0, 4000, list(range(30)), tag="s-b", results=[(900 * MS, True, "one two three")])
    v = relay.sessions_isolated([(a, [ca], SCRIPT_A), (b, [cb], SCRIPT_B)])
    assert v.status is Status.PASS, v.message


def test_a_session_hearing_the_others_words_fails_at_the_client_end():
    a, b = two_sessions(["alpha", "one", "bravo", "two"], ["one", "two"])
    ca = conn("a", 0, 3000, list(range(20)), tag="s-a", results=[(900 * MS, True, "alpha bravo")])
    cb = conn("b", 0, 4000, list(range(30)), tag="s-b", results=[(900 * MS, True, "one two")])
    v = relay.sessions_isolated([(a, [ca], SCRIPT_A), (b, [cb], SCRIPT_B)])
    assert v.status is Status.FAIL
    assert "session s-a heard 2 words of another session's audio ('one two'" in v.message
    assert v.metrics["foreign_words_heard"] == 2


def test_one_vendor_connection_shared_by_two_sessions_fails_at_the_vendor_end():
    a, b = two_sessions(["alpha", "bravo"], [])
    shared = conn("a", 0, 4000, list(range(50)), tag="s-a", results=[(900 * MS, True, "alpha one bravo")])
    v = relay.sessions_isolated([(a, [shared], SCRIPT_A), (b, [], SCRIPT_B)])
    assert v.status is Status.FAIL
    assert "got 160000 bytes, 96000 more than its client sent: another session's audio" in v.message
    assert "the vendor returned another session's words on session s-a's connection ('one'" in v.message
    assert "session s-b sent 96000 bytes and no vendor connection carries its tag" in v.message


def test_two_clients_given_one_session_id_fail_and_scripts_must_differ():
    a, b = two_sessions(["alpha"], ["one"])
    b.session_id = "s-a"
    ca = conn("a", 0, 3000, list(range(20)), tag="s-a")
    v = relay.sessions_isolated([(a, [ca], SCRIPT_A), (b, [ca], SCRIPT_B)])
    assert v.status is Status.FAIL and "two clients were given the same session id" in v.message
    with pytest.raises(ValueError, match="shares every word"):
        relay.sessions_isolated([(a, [ca], SCRIPT_A), (b, [ca], SCRIPT_A)])
