"""The Speechmatics RT codec: hand-made messages in the documented shapes (RecognitionStarted,
AudioAdded, AddPartialTranscript/AddTranscript format 2.1, EndOfTranscript, Error), generated
frames (nothing but ProtocolError escapes), and end to end through the harness's own client
against the reference server standing in for Speechmatics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.drivers.asyncio_driver import AsyncSessionClient
from harness.drivers.session import SessionPlan
from harness.protocols import ProtocolError, SessionParams, StreamTarget, get_codec
from harness.protocols.base import opening_frames
from harness.protocols.events import Closed, Error, Final, Info, Partial
from harness.services import ReferenceServer

TARGET = StreamTarget("http://127.0.0.1:8700", "sm-key")


def transcript(words: list[tuple[str, float, float]], *, final: bool, punctuation: str = "") -> str:
    text = " ".join(w for w, _, _ in words) + punctuation
    results = [{"type": "word", "start_time": s, "end_time": e,
                "alternatives": [{"content": w, "confidence": 0.9, "language": "en"}]} for w, s, e in words]
    if punctuation:
        end = words[-1][2]
        results.append({"type": "punctuation", "start_time": end, "end_time": end, "is_eos": True,
                        "alternatives": [{"content": punctuation, "confidence": 1.0}]})
    return json.dumps({
        "message": "AddTranscript" if final else "AddPartialTranscript", "format": "2.1",
        "metadata": {"start_time": words[0][1] if words else 0.0, "end_time": words[-1][2] if words else 0.0,
                     "transcript": text + " "},
        "results": results,
    })


def test_transcripts_become_partials_then_finals_numbered_in_order() -> None:
    codec = get_codec("speechmatics")
    [started] = codec.decode(json.dumps({"message": "RecognitionStarted", "id": "sm-1",
                                         "language_pack_info": {"word_delimiter": " "}}))
    assert isinstance(started, Info) and codec.learned_session_id == "sm-1"
    [ack] = codec.decode(json.dumps({"message": "AudioAdded", "seq_no": 1}))
    assert isinstance(ack, Info) and ack.data == {"seq_no": 1}
    [p] = codec.decode(transcript([("hello", 0.1, 0.4)], final=False))
    assert isinstance(p, Partial) and (p.segment_id, p.text, p.start_ms, p.end_ms) == (0, "hello", 100, 400)
    [f0] = codec.decode(transcript([("hello", 0.1, 0.4), ("there", 0.4, 0.7)], final=True, punctuation="."))
    assert isinstance(f0, Final) and (f0.segment_id, f0.text, f0.start_ms, f0.end_ms) == (0, "hello there.", 100, 700)
    assert [w.word for w in f0.words] == ["hello", "there"]  # the full stop is not a word
    [empty] = codec.decode(transcript([], final=True))
    assert isinstance(empty, Info) and empty.name == "empty_transcript"  # not a final with no words
    [f1] = codec.decode(transcript([("again", 0.9, 1.2)], final=True))
    assert isinstance(f1, Final) and f1.segment_id == 1
    [eot] = codec.decode(json.dumps({"message": "EndOfTranscript"}))
    assert isinstance(eot, Info) and eot.name == "EndOfTranscript"


def test_errors_keep_their_type_and_reason() -> None:
    [error] = get_codec("speechmatics").decode(json.dumps({"message": "Error", "type": "quota_exceeded",
                                                           "reason": "too many sessions"}))
    assert isinstance(error, Error) and (error.code, error.message, error.retryable) == \
        ("quota_exceeded", "too many sessions", True)
    [error] = get_codec("speechmatics").decode(json.dumps({"message": "Error", "type": "invalid_audio_type",
                                                           "reason": "bad"}))
    assert not error.retryable


def test_times_are_on_the_session_clock_after_a_reconnect() -> None:
    codec = get_codec("speechmatics")
    codec.connect_request(TARGET, codec.local_session(SessionParams()), resume_offset=64_000)  # 2 s before
    [f] = codec.decode(transcript([("late", 0.1, 0.4)], final=True))
    assert (f.start_ms, f.end_ms, f.words[0].start_ms) == (2100, 2400, 2100)


def test_opening_frame_connect_request_and_controls() -> None:
    codec = get_codec("speechmatics")
    req = codec.connect_request(TARGET, codec.local_session(SessionParams(engine="scripted", script="a b")))
    url = urlsplit(req.url)
    assert url.path == "/v2" and parse_qs(url.query) == {"script": ["a b"]}
    assert req.headers == {"Authorization": "Bearer sm-key"}
    [start] = opening_frames(codec)
    start = json.loads(start)
    assert start["message"] == "StartRecognition"
    assert start["audio_format"] == {"type": "raw", "encoding": "pcm_s16le", "sample_rate": 16000}
    assert start["transcription_config"] == {"language": "en", "enable_partials": True, "model": "scripted"}
    assert codec.encode_control("keepalive") is None
    assert json.loads(codec.encode_control("finalize")) == {"message": "ForceEndOfUtterance"}
    assert codec.encode_audio(0, b"\x01\x00" * 4) == b"\x01\x00" * 4
    codec.encode_audio(8, b"\x01\x00" * 4)
    assert json.loads(codec.encode_control("close_stream")) == {"message": "EndOfStream", "last_seq_no": 2}
    codec.connect_request(TARGET, codec.local_session(SessionParams()))  # a new connection counts from 0
    assert json.loads(codec.encode_control("close_stream"))["last_seq_no"] == 0
    assert "model" not in json.loads(opening_frames(codec)[0])["transcription_config"]
    assert [type(e) for e in codec.close_events(1011, "engine failed")] == [Closed]


@pytest.mark.parametrize(("frame", "problem"), [
    ("not json", "JSON"),
    (json.dumps({"message": "AddTranscript", "format": "2.1", "results": []}), "metadata"),
    (json.dumps({"message": "AddTranscript", "metadata": {"start_time": 1.0, "end_time": 0.5, "transcript": "x"}}),
     "end_time is before start_time"),
    (json.dumps({"message": "AddTranscript", "metadata": {"start_time": 0, "end_time": 1, "transcript": "x"},
                 "results": [{"type": "word", "start_time": 0, "end_time": 1, "alternatives": []}]}),
     "alternatives is empty"),
    (json.dumps({"message": "RecognitionStarted"}), "id"),
    (json.dumps({"message": "Transcript"}), "unknown message 'Transcript'"),
])
def test_a_frame_that_breaks_the_protocol_is_a_protocol_error_naming_it(frame: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        get_codec("speechmatics").decode(frame)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["message", "metadata", "results", "transcript", "start_time", "end_time",
                                         "type", "alternatives", "content", "id", "seq_no"]),
                        inner, max_size=5), max_leaves=12))
def test_generated_frames_raise_nothing_but_protocol_error(value: object) -> None:
    try:
        get_codec("speechmatics").decode(json.dumps(value))
    except ProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers(0, 2_000),
                          st.integers(1, 2_000)), min_size=1, max_size=6))
def test_a_documented_transcript_round_trips(spec: list[tuple[str, int, int]]) -> None:
    timed, at = [], 0  # (word, start ms, end ms), in order: a gap then the word's duration
    for word, gap, duration in spec:
        timed.append((word, at + gap, at + gap + duration))
        at += gap + duration
    [f] = get_codec("speechmatics").decode(transcript([(w, s / 1000, e / 1000) for w, s, e in timed], final=True))
    assert isinstance(f, Final) and f.text == " ".join(w for w, _, _ in spec)
    assert [(w.word, w.start_ms, w.end_ms) for w in f.words] == timed


# --- end to end against the stand-in -------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="scripted") as srv:
        yield srv


SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


async def test_scripted_words_are_exact_through_the_harness_client(server: ReferenceServer) -> None:
    pcm = b"\x00" * (12 * 9600)  # 12 scripted words of 300 ms: 36 chunks of 100 ms
    params = SessionParams(engine="scripted", script=SCRIPT)
    out = await AsyncSessionClient(get_codec("speechmatics"), StreamTarget(server.url, server.api_key),
                                   SessionPlan(pcm=pcm, params=params, pace=0, seed=1)).run()
    assert out.ok, out.error
    assert out.close_code == 1000 and out.session_id
    assert out.transcript.split() == SCRIPT.split()
    finals = out.history.unique_finals()
    assert [f.segment_id for f in finals] == list(range(len(finals)))
    names = [e.name for _, e in out.history.events("info")]
    assert names[0] == "RecognitionStarted" and names[-1] == "EndOfTranscript"
    assert names.count("AudioAdded") == 36  # every frame acknowledged
