"""The reference codec against PROTOCOL.md v1.

The server side is written here from PROTOCOL.md (not from the codec): hypothesis generates
server messages, this file encodes them as the protocol describes, and the codec must decode them
back to the same normalized events. Arbitrary bytes and text must yield events or a
ProtocolError, never another exception.
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocols import ProtocolError, SessionCreateError, SessionParams, StreamTarget, get_codec
from harness.protocols.events import Ack, Error, Final, Partial, PipelineEvent, Ready, Word

codec = get_codec("reference")
TARGET = StreamTarget("http://127.0.0.1:8700", "key-1")

offsets = st.integers(min_value=0, max_value=2**63)
ms = st.integers(min_value=0, max_value=10**9)
texts = st.text(max_size=40)
ids = st.integers(min_value=0, max_value=10**6)


# --- a server-side encoder, from PROTOCOL.md ------------------------------------------------
def server_ready(session_id: str, committed: int) -> str:
    return json.dumps({"type": "ready", "session_id": session_id, "committed_offset": committed, "sample_rate": 16000,
                       "heartbeat_s": 5, "idle_timeout_s": 15, "max_frame_bytes": 32768})


def server_ack(r: int, d: int) -> str:
    return json.dumps({"type": "ack", "received_offset": r, "durable_offset": d})


def server_partial(k: int, text: str, s: int, e: int) -> str:
    return json.dumps({"type": "partial", "segment_id": k, "text": text, "start_ms": s, "end_ms": e})


def server_final(k: int, words: list[tuple[str, int, int, float]]) -> str:
    return json.dumps({
        "type": "final", "segment_id": k, "text": " ".join(w for w, *_ in words),
        "start_ms": words[0][1] if words else 0, "end_ms": words[-1][2] if words else 0,
        "words": [{"word": w, "start_ms": s, "end_ms": e, "confidence": c} for w, s, e, c in words],
    })


def server_event(name: str, at: str, data: dict) -> str:
    return json.dumps({"type": "event", "name": name, "at": at, "data": data})


def server_error(code: str, message: str, retryable: bool, **extra: object) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, "retryable": retryable, **extra})


words_st = st.lists(st.tuples(st.text(min_size=1, max_size=10), ms, ms, st.floats(0, 1)), max_size=6)


@given(st.text(min_size=1, max_size=20), offsets)
def test_ready_round_trip(session_id: str, committed: int) -> None:
    assert codec.decode(server_ready(session_id, committed)) == [
        Ready(session_id, committed, 16000, 5, 15, 32768)
    ]


@given(offsets, offsets)
def test_ack_round_trip(r: int, d: int) -> None:
    assert codec.decode(server_ack(r, d)) == [Ack(r, d)]


@given(ids, texts, ms, ms)
def test_partial_round_trip(k: int, text: str, s: int, e: int) -> None:
    assert codec.decode(server_partial(k, text, s, e)) == [Partial(k, text, s, e)]


@given(ids, words_st)
def test_final_round_trip(k: int, words: list[tuple[str, int, int, float]]) -> None:
    [final] = codec.decode(server_final(k, words))
    assert isinstance(final, Final)
    assert final.segment_id == k
    assert final.words == tuple(Word(w, s, e, c) for w, s, e, c in words)
    assert final.text == " ".join(w for w, *_ in words)


@given(st.sampled_from(["session_finalized", "tasks_ready", "dashboard_refresh"]), st.text(max_size=30),
       st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_event_round_trip(name: str, at: str, data: dict) -> None:
    assert codec.decode(server_event(name, at, data)) == [PipelineEvent(name, at, data)]


@given(st.sampled_from(["bad_frame", "frame_too_large", "audio_gap", "bad_message", "session_closed", "overloaded",
                        "internal"]), texts, st.booleans(), offsets)
def test_error_round_trip_keeps_extra_fields(code: str, message: str, retryable: bool, expected: int) -> None:
    [error] = codec.decode(server_error(code, message, retryable, expected_offset=expected))
    assert error == Error(code, message, retryable, {"expected_offset": expected})


# --- anything at all: events or ProtocolError -----------------------------------------------
def _decode_or_protocol_error(frame: bytes | str) -> None:
    try:
        events = codec.decode(frame)
    except ProtocolError as exc:
        assert str(exc)  # says what was wrong
        return
    assert events and all(hasattr(e, "type") for e in events)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_any_frame_decodes_or_raises_protocol_error(frame: bytes | str) -> None:
    _decode_or_protocol_error(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["session_id", "committed_offset", "sample_rate", "received_offset", "durable_offset",
                               "segment_id", "text", "start_ms", "end_ms", "words", "name", "at", "data", "code",
                               "message", "retryable", "expected_offset", "heartbeat_s", "max_frame_bytes"])


@settings(max_examples=150)
@given(st.sampled_from(["ready", "ack", "partial", "final", "event", "error", "nope", 3, None]),
       st.dictionaries(field_names, json_values, max_size=8))
def test_json_objects_with_wrong_fields_decode_or_raise_protocol_error(kind: object, fields: dict) -> None:
    """Well-formed JSON with the right type tags but wrong-typed or missing fields."""
    _decode_or_protocol_error(json.dumps({"type": kind, **fields}))


@pytest.mark.parametrize("frame, fragment", [
    (b"\x00\x01", "unexpected binary frame"),
    ("{nope", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"type": "hello"}', "unknown message type 'hello'"),
    ('{"type": "ack", "received_offset": 1}', "missing field 'durable_offset'"),
    ('{"type": "ack", "received_offset": "1", "durable_offset": 0}', "'received_offset' must be an integer"),
    ('{"type": "ack", "received_offset": true, "durable_offset": 0}', "'received_offset' must be an integer"),
    ('{"type": "final", "segment_id": 0, "text": "a", "start_ms": 0, "end_ms": 1, "words": [{"word": 1}]}',
     "'word' must be a string"),
    ('{"type": "error", "code": "audio_gap", "expected_offset": "x"}', "'expected_offset' must be an integer"),
])
def test_protocol_errors_name_the_problem(frame: bytes | str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment.replace("(", r"\(")):
        codec.decode(frame)


# --- audio frames ----------------------------------------------------------------------------
@given(offsets, st.binary(max_size=200).filter(lambda b: len(b) % 2 == 0))
def test_audio_frame_is_8_byte_little_endian_offset_then_pcm(offset: int, pcm: bytes) -> None:
    frame = codec.encode_audio(offset, pcm)
    assert len(frame) == 8 + len(pcm)
    assert int.from_bytes(frame[:8], "little") == offset
    assert frame[:8] == struct.pack("<Q", offset)
    assert frame[8:] == pcm


def test_audio_frame_header_bytes_for_a_known_offset() -> None:
    assert codec.encode_audio(0x0102030405060708, b"\xaa\xbb")[:8] == bytes([8, 7, 6, 5, 4, 3, 2, 1])


@pytest.mark.parametrize("offset, pcm, fragment", [
    (-1, b"", "offset must be an integer"),
    (2**64, b"", "offset must be an integer"),
    (0, b"\x00", "even length"),
    (True, b"", "offset must be an integer"),
])
def test_encode_audio_refuses_bad_input(offset: int, pcm: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        codec.encode_audio(offset, pcm)


def test_controls() -> None:
    assert json.loads(codec.encode_control("finalize")) == {"type": "finalize"}
    assert json.loads(codec.encode_control("keepalive")) == {"type": "keepalive"}
    assert codec.encode_control("close_stream") is None  # v1 ends a stream with a close frame
    with pytest.raises(ValueError, match="unknown control 'flush'"):
        codec.encode_control("flush")


# --- HTTP and connect ------------------------------------------------------------------------
def test_create_session_request_carries_key_engine_and_script() -> None:
    req = codec.create_session_request(TARGET, SessionParams(engine="scripted", script="a b", metadata={"x": 1}))
    assert (req.method, req.path) == ("POST", "/v1/sessions")
    assert req.headers["Authorization"] == "Bearer key-1"
    assert req.json == {"engine": "scripted", "sample_rate": 16000, "script": "a b", "metadata": {"x": 1}}


def test_parse_session_created() -> None:
    body = {"session_id": "s1", "token": "t1", "state": "created", "stream_url": "/v1/stream?session_id=s1",
            "created_at": "2024-01-01T00:00:00Z"}
    info = codec.parse_session_created(201, json.dumps(body).encode())
    assert (info.session_id, info.token, info.state) == ("s1", "t1", "created")


@pytest.mark.parametrize("status, body, headers, message, retry", [
    (400, {"error": {"message": "sample_rate must be 16000"}}, {}, "sample_rate must be 16000", None),
    (401, {"detail": "missing API key"}, {}, "missing API key", None),
    (503, {"message": "at capacity"}, {"Retry-After": "3"}, "at capacity", 3.0),
])
def test_parse_session_refusals(status: int, body: dict, headers: dict, message: str, retry: float | None) -> None:
    with pytest.raises(SessionCreateError) as info:
        codec.parse_session_created(status, body, headers)
    assert info.value.status == status and info.value.message == message
    assert info.value.retry_after_s == retry
    assert str(status) in str(info.value) and message in str(info.value)


def test_parse_session_created_with_a_bad_body_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="session_id"):
        codec.parse_session_created(201, {"token": "t", "state": "created"})


def test_connect_request_uses_the_session_token_and_the_stream_base() -> None:
    info = codec.parse_session_created(201, {"session_id": "s 1", "token": "tok", "state": "created"})
    target = StreamTarget("http://127.0.0.1:8700", "key", stream_base_url="http://127.0.0.1:18801")
    req = codec.connect_request(target, info, last_segment_id=4)
    assert req.url == "ws://127.0.0.1:18801/v1/stream?session_id=s+1&last_segment_id=4"
    assert req.headers == {"Authorization": "Bearer tok"}
    assert "last_segment_id" not in codec.connect_request(TARGET, info, last_segment_id=-1).url


def test_session_requests() -> None:
    info = codec.parse_session_created(201, {"session_id": "s1", "token": "tok", "state": "created"})
    assert (codec.finalize_request(TARGET, info).method, codec.finalize_request(TARGET, info).path) == (
        "POST", "/v1/sessions/s1/finalize")
    assert codec.get_session_request(TARGET, info).path == "/v1/sessions/s1"
    assert codec.get_session_request(TARGET, info).headers["Authorization"] == "Bearer key-1"


def test_stream_target_validates_urls() -> None:
    with pytest.raises(ValueError, match="stream_base_url"):
        StreamTarget("http://127.0.0.1:1", "k", stream_base_url="ftp://x")
    assert StreamTarget("https://127.0.0.1:1/", "k").ws_base == "wss://127.0.0.1:1"
