"""The Deepgram codec against the live API subset of PROTOCOL.md.

A server-side encoder written here emits Results / SpeechStarted / UtteranceEnd / Metadata the
way Deepgram documents them; the codec must number finals 0, 1, 2 … in order, convert seconds to
milliseconds on the session's audio clock, and never raise anything but ProtocolError.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocols import ProtocolError, SessionParams, StreamTarget, get_codec
from harness.protocols.events import Closed, Error, Final, Info, Partial

TARGET = StreamTarget("http://127.0.0.1:8700", "dg-key")


def results(words: list[tuple[str, float, float]], is_final: bool, start: float, duration: float,
            speech_final: bool = False, from_finalize: bool = False, request_id: str = "req-1") -> str:
    return json.dumps({
        "type": "Results", "channel_index": [0, 1], "start": start, "duration": duration,
        "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
        "channel": {"alternatives": [{
            "transcript": " ".join(w for w, _, _ in words), "confidence": 0.9,
            "words": [{"word": w, "start": s, "end": e, "confidence": 0.9, "punctuated_word": w.title()}
                      for w, s, e in words],
        }]},
        "metadata": {"request_id": request_id, "model_info": {"name": "general"}},
    })


utterance = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.booleans()), min_size=1, max_size=12)


@given(utterance)
def test_finals_are_numbered_in_order_and_partials_carry_the_next_id(stream: list[tuple[str, bool]]) -> None:
    """Whatever mix of interim and final results arrives, finals get 0, 1, 2 … and a partial
    belongs to the segment the next final will close."""
    codec = get_codec("deepgram")
    finals_seen = 0
    for i, (word, is_final) in enumerate(stream):
        events = codec.decode(results([(word, i * 0.5, i * 0.5 + 0.5)], is_final, i * 0.5, 0.5))
        head = events[0]
        if is_final:
            assert isinstance(head, Final) and head.segment_id == finals_seen
            finals_seen += 1
        else:
            assert isinstance(head, Partial) and head.segment_id == finals_seen
    assert codec.learned_session_id == "req-1"


def test_times_are_milliseconds_on_the_session_clock() -> None:
    codec = get_codec("deepgram")
    session = codec.local_session(SessionParams())
    codec.connect_request(TARGET, session, resume_offset=64_000)  # 2 s of audio sent before this connection
    [final, endpoint] = codec.decode(results([("hello", 0.25, 0.5), ("there", 0.5, 0.875)], True, 0.25, 0.625,
                                             speech_final=True))
    assert final == Final(0, "hello there", 2250, 2875, final.words)
    assert [(w.word, w.start_ms, w.end_ms) for w in final.words] == [("hello", 2250, 2500), ("there", 2500, 2875)]
    assert endpoint == Info("endpoint", {"segment_id": 0, "speech_final": True, "from_finalize": False})


def test_info_messages_and_metadata() -> None:
    codec = get_codec("deepgram")
    assert codec.decode(json.dumps({"type": "SpeechStarted", "channel": [0], "timestamp": 1.5})) == [
        Info("SpeechStarted", {"channel": [0], "timestamp": 1.5})]
    assert codec.decode(json.dumps({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.0}))[0].name == "UtteranceEnd"
    [meta] = codec.decode(json.dumps({"type": "Metadata", "request_id": "abc", "duration": 3.0, "channels": 1}))
    assert meta.name == "Metadata" and codec.learned_session_id == "abc"


def test_error_close_reason_becomes_an_error_event() -> None:
    codec = get_codec("deepgram")
    events = codec.close_events(1011, "NET-0001")
    assert events == [Error("NET-0001", "NET-0001", True, {"close_code": 1011}), Closed(1011, "NET-0001")]
    assert codec.close_events(1000, "") == [Closed(1000, "")]
    assert codec.close_events(1008, "DATA-0000: bad audio")[0].code == "DATA-0000"


def test_error_message() -> None:
    codec = get_codec("deepgram")
    [err] = codec.decode(json.dumps({"type": "Error", "description": "bad", "message": "m", "variant": "DATA-0000"}))
    assert (err.code, err.message) == ("DATA-0000", "bad")


def test_connect_request_query_and_token_auth() -> None:
    codec = get_codec("deepgram")
    params = SessionParams(interim_results=False, endpointing=300, utterance_end_ms=1000, vad_events=True)
    req = codec.connect_request(TARGET, codec.local_session(params))
    url = urlsplit(req.url)
    assert (url.scheme, url.path) == ("ws", "/v1/listen")
    assert parse_qs(url.query) == {"encoding": ["linear16"], "sample_rate": ["16000"], "channels": ["1"],
                                   "interim_results": ["false"], "endpointing": ["300"],
                                   "utterance_end_ms": ["1000"], "vad_events": ["true"]}
    assert req.headers == {"Authorization": "Token dg-key"}


def test_frames_and_controls() -> None:
    codec = get_codec("deepgram")
    assert codec.encode_audio(320, b"\x01\x02") == b"\x01\x02"  # raw PCM: no offset header
    assert [json.loads(codec.encode_control(k))["type"] for k in ("keepalive", "finalize", "close_stream")] == [
        "KeepAlive", "Finalize", "CloseStream"]
    assert codec.create_session_request(TARGET, SessionParams()) is None
    assert codec.finalize_request(TARGET, codec.local_session(SessionParams())) is None


@pytest.mark.parametrize("frame, fragment", [
    ('{"type": "Results"}', "channel"),
    ('{"type": "Results", "channel": {"alternatives": []}, "is_final": true, "start": 0, "duration": 0}', "empty"),
    ('{"type": "Transcript"}', "unknown message type 'Transcript'"),
    ('{"type": "Results", "channel": {"alternatives": [{"transcript": ""}]}, "is_final": true, "start": 1e308, '
     '"duration": 1e308}', "does not fit"),
    (b"\x00", "unexpected binary frame"),
])
def test_protocol_errors_name_the_problem(frame: bytes | str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        get_codec("deepgram").decode(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["alternatives", "transcript", "words", "word", "start", "end", "confidence", "request_id"]),
        children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=150)
@given(st.sampled_from(["Results", "Metadata", "SpeechStarted", "UtteranceEnd", "Error", "x"]),
       st.dictionaries(st.sampled_from(["channel", "is_final", "speech_final", "from_finalize", "start", "duration",
                                        "metadata", "request_id", "description", "variant"]), json_values, max_size=8))
def test_json_with_wrong_fields_decodes_or_raises_protocol_error(kind: str, fields: dict) -> None:
    try:
        get_codec("deepgram").decode(json.dumps({"type": kind, **fields}))
    except ProtocolError:
        pass


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_any_frame_decodes_or_raises_protocol_error(frame: bytes | str) -> None:
    try:
        get_codec("deepgram").decode(frame)
    except ProtocolError:
        pass
