"""SessionCore driven by hand: no sockets, no clock. Each test feeds the frames a server would
send (written here from PROTOCOL.md) and asserts the next action the core asks for."""

from __future__ import annotations

import json

import pytest

from harness.drivers.session import (
    CloseStream,
    Connect,
    Done,
    HttpCall,
    SendAudio,
    SendControl,
    SessionCore,
    SessionPlan,
    Wait,
)
from harness.protocols import SessionParams, StreamTarget, get_codec
from harness.safety import RemoteTargetError

TARGET = StreamTarget("http://127.0.0.1:18899", "key")
CHUNK = 3200  # 100 ms


def ready(committed: int = 0) -> str:
    return json.dumps({"type": "ready", "session_id": "s1", "committed_offset": committed, "sample_rate": 16000,
                       "heartbeat_s": 5, "idle_timeout_s": 15, "max_frame_bytes": 32768})


def ack(r: int, d: int = 0) -> str:
    return json.dumps({"type": "ack", "received_offset": r, "durable_offset": d})


def final(k: int) -> str:
    return json.dumps({"type": "final", "segment_id": k, "text": f"w{k}", "start_ms": k * 100,
                       "end_ms": k * 100 + 100, "words": []})


def gap(expected: int) -> str:
    return json.dumps({"type": "error", "code": "audio_gap", "message": "gap", "retryable": True,
                       "expected_offset": expected})


def make(chunks: int = 5, **plan_kw) -> SessionCore:
    plan_kw.setdefault("pace", 0)
    plan_kw.setdefault("fetch_state", False)
    plan_kw.setdefault("seed", 1)
    plan = SessionPlan(pcm=bytes(CHUNK * chunks), params=SessionParams(script="a b"), chunk_ms=100, **plan_kw)
    return SessionCore(get_codec("reference"), TARGET, plan)


def connect(core: SessionCore, now: float = 0.0, committed: int = 0, create: bool = True) -> Connect:
    if create:
        call = core.next_action(now)
        assert isinstance(call, HttpCall) and call.purpose == "create"
        core.on_http_response(call, 201, {"session_id": "s1", "token": "t", "state": "created"}, {}, 1.0)
    action = core.next_action(now)
    assert isinstance(action, Connect)
    core.on_connected(1.0, action.attempt)
    core.on_frame(ready(committed))
    return action


def send(core: SessionCore, now: float = 0.0) -> SendAudio:
    action = core.next_action(now)
    assert isinstance(action, SendAudio), action
    core.on_sent(action)
    return action


def test_a_clean_session_sends_all_audio_waits_for_acks_then_finalizes() -> None:
    core = make(chunks=3)
    connect(core)
    assert [send(core).offset for _ in range(3)] == [0, 3200, 6400]
    assert isinstance(core.next_action(0.0), Wait)  # not everything acked yet: no finalize
    core.on_frame(ack(9600))
    finalize = core.next_action(0.0)
    assert isinstance(finalize, SendControl) and json.loads(finalize.frame) == {"type": "finalize"}
    core.on_sent(finalize)
    core.on_closed(1000, "session complete")
    assert isinstance(core.next_action(0.0), Done)
    out = core.outcome()
    assert out.ok and out.close_code == 1000 and out.reconnects == 0


def test_a_lost_final_reconnects_with_the_last_contiguous_segment_id() -> None:
    core = make()
    connect(core)
    core.on_frame(final(0))
    core.on_frame(final(2))  # 1 is missing
    close = core.next_action(0.0)
    assert isinstance(close, CloseStream) and close.reason == "resync"
    core.on_closed(1000, "")
    again = core.next_action(0.0)
    assert isinstance(again, Connect) and again.request.url.endswith("last_segment_id=0")
    core.on_connected(1.0, again.attempt)
    core.on_frame(ready())
    core.on_frame(final(1))
    core.on_frame(final(2))  # the replay
    assert core.last_contiguous == 2
    assert [f.segment_id for f in core.history.unique_finals()] == [0, 1, 2]
    assert len(core.history.finals()) == 4  # replays are kept: checks compare them
    assert any("segment(s) [1] never did" in r.data["text"] for r in core.history.of_kind("note"))


def test_audio_gap_resends_from_the_expected_offset_once() -> None:
    core = make(chunks=5)
    connect(core)
    for _ in range(5):
        send(core)
    core.on_frame(gap(3200))
    assert send(core).offset == 3200
    core.on_frame(gap(3200))  # answer to a frame sent before the rewind: not another rewind
    assert send(core).offset == 6400
    core.on_frame(ack(6400))
    core.on_frame(gap(3200))  # stale: the server has moved past it
    assert send(core).offset == 9600


def test_a_late_frame_that_fills_the_gap_overtakes_the_rewind() -> None:
    # Frames 2 and 3 reordered in transit: the server asks for 6400, then the late frame arrives,
    # it acks 9600 and a final makes 9600 durable before the client resent anything.
    core = make(chunks=5)
    connect(core)
    for _ in range(4):
        send(core)
    core.on_frame(ack(6400))
    core.on_frame(gap(6400))
    core.on_frame(ack(9600, 9600))
    assert send(core).offset == 9600  # the frame the gap refused; not 6400: taken since, and released
    assert core.outcome().error is None


def test_ready_after_a_reconnect_acks_what_the_server_already_holds() -> None:
    # The last frame was taken just as the connection closed, so its ack never came; on the new
    # connection there is nothing left to send, and ready's committed offset is the only ack.
    core = make(chunks=3)
    connect(core)
    for _ in range(3):
        send(core)
    core.on_frame(ack(6400))
    core.on_closed(1011, "internal error")
    again = core.next_action(10.0)
    assert isinstance(again, Connect)
    core.on_connected(1.0, again.attempt)
    core.on_frame(ready(9600))
    finalize = core.next_action(10.0)
    assert isinstance(finalize, SendControl) and json.loads(finalize.frame) == {"type": "finalize"}


def test_a_drop_reconnects_with_backoff_and_resumes_at_committed_offset() -> None:
    core = make(chunks=5, backoff_base_s=1.0, backoff_jitter=0.0)
    connect(core)
    for _ in range(4):
        send(core)
    core.on_frame(ack(12800, 6400))
    core.on_closed(1006, "")
    wait = core.next_action(0.0)
    assert isinstance(wait, Wait) and wait.until == pytest.approx(1.0)
    connect(core, now=1.0, committed=6400, create=False)
    assert send(core, 1.0).offset == 6400
    assert core.outcome().reconnects == 1


def test_committed_offset_below_what_was_acked_durable_resends_from_the_oldest_held_byte() -> None:
    core = make(chunks=5)
    connect(core)
    for _ in range(4):
        send(core)
    core.on_frame(ack(12800, 6400))
    core.on_closed(1011, "")
    core.next_action(0.0)
    connect(core, now=1.0, committed=0, create=False)  # a server that forgot durable audio
    assert send(core, 1.0).offset == 6400
    assert any("below the durable offset" in r.data["text"] for r in core.history.of_kind("note"))


def test_the_buffer_bound_makes_the_client_wait_for_durability() -> None:
    core = make(chunks=5, max_buffer_bytes=2 * CHUNK)
    connect(core)
    send(core)
    send(core)
    assert isinstance(core.next_action(0.0), Wait)
    core.on_frame(ack(6400, 3200))
    assert send(core).offset == 6400


def test_pacing_waits_for_real_time() -> None:
    core = make(chunks=3, pace=1.0)
    connect(core)
    send(core, 0.0)
    wait = core.next_action(0.01)
    assert isinstance(wait, Wait) and wait.until == pytest.approx(0.1)
    assert send(core, 0.1).offset == 3200


def test_reconnects_are_bounded_and_the_error_says_why() -> None:
    core = make(max_reconnects=2, backoff_base_s=0.0)
    connect(core)
    connects = 0
    for _ in range(5):
        core.on_closed(1006, "")
        action = core.next_action(0.0)
        if isinstance(action, Done):
            break
        assert isinstance(action, Connect)
        connects += 1
        core.on_connected(1.0, action.attempt)
    assert connects == 2
    out = core.outcome()
    assert not out.ok and "gave up after 2 reconnect(s)" in out.error


def test_stop_codes_end_the_session_with_an_error() -> None:
    core = make()
    connect(core)
    core.on_closed(4404, "unknown session")
    assert isinstance(core.next_action(0.0), Done)
    assert "4404" in core.outcome().error


def test_close_1000_before_finalize_is_an_error() -> None:
    core = make()
    connect(core)
    core.on_closed(1000, "")
    assert "before the client finalized" in core.outcome().error


def test_4410_after_our_finalize_means_it_took_effect() -> None:
    core = make(chunks=1)
    connect(core)
    send(core)
    core.on_frame(ack(3200))
    core.on_sent(core.next_action(0.0))  # finalize
    core.on_closed(1006, "")
    connect_again = core.next_action(5.0)
    assert isinstance(connect_again, Connect)
    core.on_connected(1.0, connect_again.attempt)
    core.on_closed(4410, "session already finalized")
    out = core.outcome()
    assert out.completed and out.error is None


def test_session_creation_retries_a_503_after_retry_after_then_gives_up_on_400() -> None:
    core = make(max_create_retries=1)
    call = core.next_action(0.0)
    core.on_http_response(call, 503, {"message": "at capacity"}, {"Retry-After": "2"}, 1.0)
    assert core.next_action(0.5) == Wait(2.0)
    call = core.next_action(2.0)
    assert isinstance(call, HttpCall)
    core.on_http_response(call, 400, {"error": {"message": "script is required"}}, {}, 1.0)
    assert isinstance(core.next_action(2.0), Done)
    assert "HTTP 400: script is required" in core.outcome().error


def test_the_deadline_bounds_the_whole_session() -> None:
    core = make(deadline_s=5.0)
    connect(core)
    close = core.next_action(6.0)
    assert isinstance(close, CloseStream)
    core.on_closed(1000, "")
    assert isinstance(core.next_action(6.0), Done)
    assert "deadline of 5.0 s" in core.outcome().error


def test_malformed_frames_are_recorded_not_raised() -> None:
    core = make()
    connect(core)
    core.on_frame("{not json")
    [(_, err)] = core.history.events("error")
    assert err.code == "protocol_error" and "not valid JSON" in err.message
    assert core.outcome().protocol_errors == 1


def test_deepgram_reconnect_continues_where_sending_stopped() -> None:
    plan = SessionPlan(pcm=bytes(CHUNK * 4), pace=0, chunk_ms=100, fetch_state=False, backoff_base_s=0.0)
    core = SessionCore(get_codec("deepgram"), TARGET, plan)
    first = core.next_action(0.0)
    assert isinstance(first, Connect) and "/v1/listen" in first.request.url
    core.on_connected(1.0, first.attempt)
    send(core)
    send(core)
    core.on_closed(1011, "NET-0001")
    assert [e.type for _, e in core.history.events()][-2:] == ["error", "closed"]
    again = core.next_action(0.0)
    assert isinstance(again, Connect)
    core.on_connected(1.0, again.attempt)
    assert send(core).offset == 6400  # no resume: what was in flight is gone
    assert core.codec.time_base_ms == 200.0


def test_remote_targets_are_refused_unless_allowed() -> None:
    remote = StreamTarget("http://203.0.113.7:8700", "key")
    with pytest.raises(RemoteTargetError, match="203.0.113.7"):
        SessionCore(get_codec("reference"), remote, SessionPlan(pcm=b""))
    proxied = StreamTarget("http://127.0.0.1:8700", "key", stream_base_url="ws://198.51.100.2:9")
    with pytest.raises(RemoteTargetError, match="198.51.100.2"):
        SessionCore(get_codec("reference"), proxied, SessionPlan(pcm=b""))
    SessionCore(get_codec("reference"), remote, SessionPlan(pcm=b"", allow_remote=True))


def test_bad_plans_are_refused_with_every_problem_named() -> None:
    with pytest.raises(ValueError) as info:
        SessionPlan(pcm=b"\x00", pace=-1, finalize="later", max_reconnects=-1)
    for fragment in ("even length", "pace", "finalize", "max_reconnects"):
        assert fragment in str(info.value)
    with pytest.raises(ValueError, match="no HTTP finalize"):
        SessionCore(get_codec("deepgram"), TARGET, SessionPlan(pcm=b"", finalize="http"))


def test_keepalive_while_waiting_with_nothing_to_send() -> None:
    core = make(chunks=2, max_buffer_bytes=CHUNK, keepalive_s=5.0)
    connect(core)
    send(core, 0.0)
    wait = core.next_action(1.0)  # buffer full, no ack yet
    assert isinstance(wait, Wait) and wait.until == pytest.approx(5.0)
    keepalive = core.next_action(5.0)
    assert isinstance(keepalive, SendControl) and json.loads(keepalive.frame) == {"type": "keepalive"}
    core.on_sent(keepalive)
    assert core.next_action(6.0) == Wait(10.0)


# --- opening frames, text audio frames and a stream the server never closes (OpenAI Realtime) ----
def openai_core(chunks: int = 2) -> SessionCore:
    plan = SessionPlan(pcm=bytes(CHUNK * chunks), params=SessionParams(script="a b"), chunk_ms=100, pace=0,
                       fetch_state=False, seed=1)
    return SessionCore(get_codec("openai-realtime"), TARGET, plan)


def test_opening_frames_go_first_on_every_connection_and_audio_may_be_text() -> None:
    core = openai_core()
    for attempt in range(2):
        now = core.wake_at  # 0 at first, then the reconnect's backoff
        action = core.next_action(now)
        assert isinstance(action, Connect) and action.attempt == attempt
        core.on_connected(1.0, action.attempt)
        opening = core.next_action(now)
        assert isinstance(opening, SendControl) and opening.message == "opening"
        assert json.loads(opening.frame)["type"] == "session.update"
        core.on_sent(opening)
        audio = send(core, now)
        assert isinstance(audio.frame, str) and json.loads(audio.frame)["type"] == "input_audio_buffer.append"
        core.on_closed(1006, "dropped")  # the next connection starts with session.update again


def test_the_answer_to_the_closing_commit_completes_the_session_with_a_client_close() -> None:
    core = openai_core(chunks=2)
    action = core.next_action(0.0)
    core.on_connected(1.0, action.attempt)
    core.on_sent(core.next_action(0.0))  # session.update
    send(core), send(core)
    commit = core.next_action(0.0)
    assert isinstance(commit, SendControl) and json.loads(commit.frame) == {"type": "input_audio_buffer.commit"}
    core.on_sent(commit)
    core.on_frame(json.dumps({"type": "input_audio_buffer.committed", "item_id": "item_1"}))
    assert isinstance(core.next_action(0.0), Wait)  # committed is not the answer: wait for the transcript
    core.on_frame(json.dumps({"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_1",
                              "content_index": 0, "transcript": "a b"}))
    close = core.next_action(0.0)
    assert isinstance(close, CloseStream) and close.code == 1000
    core.on_closed(1000, "")
    assert isinstance(core.next_action(0.0), Done)
    assert core.outcome().ok and core.completed


def test_without_the_answer_the_session_is_not_complete() -> None:
    core = openai_core(chunks=1)
    action = core.next_action(0.0)
    core.on_connected(1.0, action.attempt)
    core.on_sent(core.next_action(0.0))
    send(core)
    core.on_sent(core.next_action(0.0))  # the commit
    wait = core.next_action(0.0)
    assert isinstance(wait, Wait)
    close = core.next_action(wait.until)  # finish_timeout_s passes with no completed
    assert isinstance(close, CloseStream)
    core.on_closed(1000, "")
    assert not core.completed and "no close from the server" in (core.outcome().error or "")


def test_without_resume_a_frame_whose_send_failed_is_lost_with_the_connection() -> None:
    plan = SessionPlan(pcm=bytes(CHUNK * 4), pace=0, chunk_ms=100, fetch_state=False, backoff_base_s=0.0)
    core = SessionCore(get_codec("deepgram"), TARGET, plan)
    first = core.next_action(0.0)
    core.on_connected(1.0, first.attempt)
    send(core)
    unsent = core.next_action(0.0)  # read from the source, but the connection dies before it is written
    assert isinstance(unsent, SendAudio) and unsent.offset == CHUNK
    core.on_closed(1006, "")
    again = core.next_action(0.0)
    assert isinstance(again, Connect)
    core.on_connected(1.0, again.attempt)
    assert send(core).offset == 2 * CHUNK  # carries on after the lost frame instead of failing to resend it
    assert any("was read but never sent" in r.data["text"] for r in core.history.of_kind("note"))
    assert core.error is None


def _finalized_with_a_hole() -> SessionCore:
    """Audio acked, finalize sent, then finals 0 and 2 on the stream: 1 was lost after finalize."""
    core = make(chunks=1, fetch_state=True)
    connect(core)
    send(core)
    core.on_frame(ack(3200))
    finalize = core.next_action(0.0)
    assert isinstance(finalize, SendControl) and finalize.message == "finalize"
    core.on_sent(finalize)
    core.on_frame(final(0))
    core.on_frame(final(2))
    return core


def test_a_final_lost_after_finalize_is_read_from_the_session_record_not_resynced() -> None:
    core = _finalized_with_a_hole()
    assert not isinstance(core.next_action(0.0), CloseStream)  # a reconnect would only get 4410
    core.on_closed(1000, "")
    get = core.next_action(0.0)
    assert isinstance(get, HttpCall) and get.purpose == "get"
    record = {"state": "completed", "finals": [json.loads(final(k)) for k in range(3)]}
    core.on_http_response(get, 200, record, {}, 3.0)
    assert [f.segment_id for f in core.history.unique_finals()] == [0, 1, 2]
    notes = [r.data for r in core.history.of_kind("note") if r.data.get("recovered_segment") is not None]
    assert notes == [{"text": notes[0]["text"], "recovered_segment": 1, "recovered_from": "record"}]
    assert core.outcome().completed


def test_a_record_without_the_lost_final_leaves_it_missing() -> None:
    core = _finalized_with_a_hole()
    core.on_closed(1000, "")
    get = core.next_action(0.0)
    core.on_http_response(get, 200, {"state": "completed", "finals": [json.loads(final(0))]}, {}, 3.0)
    assert [f.segment_id for f in core.history.unique_finals()] == [0, 2]
    assert core.missing_segments == {1}
