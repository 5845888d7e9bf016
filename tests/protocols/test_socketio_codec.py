"""The Socket.IO codec: packed events in and out (binary audio included), the documented payloads
decoded to normalized events, bad frames and payloads that must raise naming what is wrong, and
generated frames that raise nothing but ProtocolError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocols import ProtocolError, SessionParams, StreamTarget, get_codec
from harness.protocols.base import opening_frames
from harness.protocols.events import Ack, Error, Final, Info, Partial, Ready
from harness.protocols.socketio import pack_event, unpack_event

TARGET = StreamTarget("http://127.0.0.1:8700", "key")


def connected(resume_offset: int = 0, params: SessionParams | None = None):
    codec = get_codec("socketio")
    codec.connect_request(TARGET, codec.local_session(params or SessionParams()), resume_offset=resume_offset)
    return codec


def event(name: str, **data) -> str:
    return json.dumps({"event": name, "data": data})


def test_events_pack_and_unpack_with_binary_fields_as_bytes() -> None:
    frame = pack_event("audio_chunk", {"session_id": "s", "seq": 1, "audio": b"\x00\x01\x02"})
    assert isinstance(frame, bytes)
    assert unpack_event(frame) == ("audio_chunk", {"session_id": "s", "seq": 1, "audio": b"\x00\x01\x02"})
    text = pack_event("end_session", {"session_id": "s"})
    assert isinstance(text, str) and unpack_event(text) == ("end_session", {"session_id": "s"})


@pytest.mark.parametrize(("frame", "problem"), [
    ("nope", "not a packed event"),
    (json.dumps({"data": {}}), "needs a string 'event'"),
    (b'{"event": "a", "data": {}, "binary": {"audio": 4}}', "without its header line"),
    (b'{"event": "a", "data": {}, "binary": {"audio": 4}}\n\x00', "say 4 bytes, the frame has 1"),
    (b'{"event": "a", "data": {}, "binary": {"audio": -1}}\n', "bad binary fields"),
])
def test_bad_frames_raise_naming_what_is_wrong(frame, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        unpack_event(frame)


def test_the_session_is_joined_then_audio_goes_with_its_id_and_offset() -> None:
    codec = connected(params=SessionParams(engine="scripted", script="a b"))
    [join] = opening_frames(codec)
    assert unpack_event(join) == ("join_session", {"language": "en", "sample_rate": 16000, "encoding": "pcm_s16le",
                                                   "engine": "scripted", "script": "a b"})
    [ready] = codec.decode(event("joined_session", session_id="s-1", sample_rate=16000, encoding="pcm_s16le"))
    assert ready == Ready("s-1", 0, 16000) and codec.learned_session_id == "s-1"
    assert unpack_event(codec.encode_audio(0, b"\x01\x00" * 4)) == \
        ("audio_chunk", {"session_id": "s-1", "seq": 1, "offset": 0, "audio": b"\x01\x00" * 4})
    [ack] = codec.decode(event("audio_acknowledged", session_id="s-1", seq=1, received_offset=8))
    assert ack == Ack(8, 8)
    assert codec.encode_control("keepalive") is None  # Engine.IO's pings keep the socket open
    assert unpack_event(codec.encode_control("close_stream")) == ("end_session", {"session_id": "s-1"})


def test_a_reconnect_is_a_new_session_whose_offsets_and_times_start_at_the_connection() -> None:
    codec = connected(resume_offset=32_000)  # one second sent before
    [ready] = codec.decode(event("joined_session", session_id="s-2"))
    assert ready.committed_offset == 32_000 and codec.learned_session_id == "s-2"
    assert unpack_event(codec.encode_audio(32_000, b"\x00\x00"))[1]["offset"] == 0
    [ack] = codec.decode(event("audio_acknowledged", session_id="s-2", received_offset=2))
    assert ack.received_offset == 32_002
    [p] = codec.decode(event("transcript_partial", session_id="s-2", segment_id=0, text="hi", start_ms=10,
                             end_ms=20))
    assert (p.start_ms, p.end_ms) == (1010, 1020)
    with pytest.raises(ValueError, match="before this connection's start"):
        codec.encode_audio(0, b"\x00\x00")


def test_results_keep_the_server_segment_ids_and_words() -> None:
    codec = connected()
    [p] = codec.decode(event("transcript_partial", session_id="s", segment_id=3, text="hel", start_ms=0, end_ms=200))
    assert p == Partial(3, "hel", 0, 200)
    [f] = codec.decode(event("transcript_final", session_id="s", segment_id=3, text="hello", start_ms=0, end_ms=400,
                             words=[{"word": "hello", "start_ms": 0, "end_ms": 400, "confidence": 0.5}]))
    assert isinstance(f, Final) and (f.segment_id, f.text, f.words[0].word, f.words[0].confidence) == \
        (3, "hello", "hello", 0.5)


def test_session_finalized_ends_the_stream_only_after_end_session() -> None:
    codec = connected()
    codec.decode(event("joined_session", session_id="s"))
    [info] = codec.decode(event("session_finalized", session_id="s", transcript="", segments=0))
    assert isinstance(info, Info) and not codec.stream_finished
    codec.encode_control("finalize")
    codec.decode(event("session_finalized", session_id="s", transcript="x", segments=1))
    assert codec.stream_finished


def test_errors_and_other_events() -> None:
    codec = connected()
    [error] = codec.decode(event("error", code="offset_mismatch", message="no", expected_offset=10))
    assert isinstance(error, Error) and (error.code, error.details["expected_offset"]) == ("offset_mismatch", 10)
    [other] = codec.decode(event("server_notice", text="maintenance at noon"))
    assert isinstance(other, Info) and other.name == "server_notice"


@pytest.mark.parametrize(("frame", "problem"), [
    (event("joined_session"), "missing field 'session_id'"),
    (event("audio_acknowledged", received_offset=-1), "received_offset"),
    (event("transcript_final", segment_id=0, text="x", start_ms=5, end_ms=1), "end_ms is before start_ms"),
    (event("transcript_partial", segment_id="0", text="x", start_ms=0, end_ms=1), "segment_id"),
    (json.dumps({"event": "transcript_final", "data": [1]}), "must be an object"),
    (event("transcript_final", segment_id=0, text="x", start_ms=0, end_ms=1, words=[{"word": 1}]), "word"),
])
def test_a_payload_that_breaks_the_protocol_is_a_protocol_error(frame: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        connected().decode(frame)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["joined_session", "audio_acknowledged", "transcript_partial", "transcript_final", "error",
                        "session_finalized"]),
       st.dictionaries(st.sampled_from(["session_id", "segment_id", "text", "start_ms", "end_ms", "words",
                                        "received_offset", "code", "message", "sample_rate"]),
                       st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
                       | st.lists(st.integers(), max_size=2), max_size=6))
def test_generated_payloads_raise_nothing_but_protocol_error(name: str, data: dict) -> None:
    try:
        connected().decode(json.dumps({"event": name, "data": data}))
    except ProtocolError:
        pass
