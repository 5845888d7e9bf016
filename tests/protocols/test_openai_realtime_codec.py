"""The OpenAI Realtime transcription codec: hand-made server events in the documented shapes
(session.created/updated, input_audio_buffer.*, conversation.item.input_audio_transcription.delta/
completed/failed, error), generated frames (nothing but ProtocolError escapes), the 16 -> 24 kHz
upsampler, and end to end through the harness's own client against the reference server standing
in for OpenAI (the server never closes this stream: the client closes after the last answer)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.drivers.asyncio_driver import AsyncSessionClient
from harness.drivers.session import SessionPlan
from harness.protocols import ProtocolError, SessionParams, StreamTarget, get_codec
from harness.protocols.base import opening_frames, stream_finished
from harness.protocols.events import Error, Final, Info, Partial
from harness.protocols.openai_realtime import Upsampler
from harness.services import ReferenceServer

TARGET = StreamTarget("http://127.0.0.1:8700", "sk-test")
ITEM = "conversation.item.input_audio_transcription."


def event(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, "event_id": "event_1", **fields})


def completed(text: str, item: str = "item_1") -> str:
    return event(ITEM + "completed", item_id=item, content_index=0, transcript=text,
                 usage={"type": "duration", "seconds": 1.0})


def connected(script: str | None = None, resume_offset: int = 0):
    codec = get_codec("openai-realtime")
    params = SessionParams(engine="scripted", script=script) if script else SessionParams()
    request = codec.connect_request(TARGET, codec.local_session(params), resume_offset=resume_offset)
    return codec, request


def test_connect_request_and_the_opening_session_update() -> None:
    codec, req = connected("a b")
    url = urlsplit(req.url)
    assert url.path == "/v1/realtime" and req.headers == {"Authorization": "Bearer sk-test"}
    assert parse_qs(url.query) == {"intent": ["transcription"], "model": ["scripted"], "script": ["a b"]}
    [update] = opening_frames(codec)
    update = json.loads(update)
    assert update["type"] == "session.update"
    audio_in = update["session"]["audio"]["input"]
    assert update["session"]["type"] == "transcription"
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["turn_detection"] is None and audio_in["transcription"]["model"] == "scripted"
    codec, req = connected()
    assert parse_qs(urlsplit(req.url).query) == {"intent": ["transcription"]}
    assert json.loads(opening_frames(codec)[0])["session"]["audio"]["input"]["transcription"]["model"] == \
        "gpt-4o-transcribe"


def test_audio_is_a_text_append_with_base64_pcm_at_24_khz() -> None:
    codec, _ = connected()
    frame = codec.encode_audio(0, b"\x10\x00" * 1600)  # 100 ms at 16 kHz
    assert isinstance(frame, str)
    append = json.loads(frame)
    assert append["type"] == "input_audio_buffer.append"
    assert len(base64.b64decode(append["audio"])) == 2 * 2400  # 100 ms at 24 kHz
    assert codec.encode_control("keepalive") is None
    assert json.loads(codec.encode_control("finalize")) == {"type": "input_audio_buffer.commit"}


def test_a_commit_answered_is_one_final_and_the_closing_commit_finishes_the_stream() -> None:
    codec, _ = connected(resume_offset=32_000)  # 1 s of audio before this connection
    for offset in range(0, 64_000, 3200):  # 2 s on this connection
        codec.encode_audio(32_000 + offset, b"\x00\x00" * 1600)
    codec.encode_control("finalize")  # a commit mid-stream: the stream goes on
    codec.encode_audio(96_000, b"\x00\x00" * 1600)
    codec.encode_control("close_stream")
    assert [type(e) for e in codec.decode(event("session.updated", session={}))] == [Info]
    assert [type(e) for e in codec.decode(event("input_audio_buffer.committed", item_id="item_1"))] == [Info]
    [p] = codec.decode(event(ITEM + "delta", item_id="item_1", content_index=0, delta="hello"))
    assert isinstance(p, Partial) and (p.segment_id, p.text) == (0, "hello")
    [f0] = codec.decode(completed(" hello there "))
    assert isinstance(f0, Final) and (f0.segment_id, f0.text, f0.start_ms, f0.end_ms) == (0, "hello there", 1000, 3000)
    assert not stream_finished(codec)  # the closing commit is not answered yet
    [f1] = codec.decode(completed("again", "item_2"))
    assert isinstance(f1, Final) and (f1.segment_id, f1.start_ms, f1.end_ms) == (1, 3000, 3100)
    assert stream_finished(codec)


def test_an_empty_commit_error_answers_the_closing_commit() -> None:
    codec, _ = connected()
    codec.encode_control("close_stream")
    [error] = codec.decode(event("error", error={
        "type": "invalid_request_error", "code": "input_audio_buffer_commit_empty",
        "message": "Error committing input audio buffer: buffer too small.", "param": None, "event_id": None}))
    assert isinstance(error, Error) and error.code == "input_audio_buffer_commit_empty" and not error.retryable
    assert stream_finished(codec)


def test_an_empty_transcript_is_info_and_failed_is_an_error() -> None:
    codec, _ = connected()
    [empty] = codec.decode(completed(""))
    assert isinstance(empty, Info) and empty.name == "empty_transcript"
    [failed] = codec.decode(event(ITEM + "failed", item_id="item_2", content_index=0, error={
        "type": "server_error", "code": "transcription_failed", "message": "engine died", "param": None}))
    assert isinstance(failed, Error) and (failed.code, failed.message, failed.retryable) == \
        ("transcription_failed", "engine died", True)
    [f] = codec.decode(completed("words"))
    assert f.segment_id == 0  # the empty one took no segment id


@pytest.mark.parametrize(("frame", "problem"), [
    ("not json", "JSON"),
    (b'{"type": "session.created"}', "binary frame"),
    (json.dumps({"event_id": "e"}), "without a string 'type'"),
    (event(ITEM + "completed", item_id="item_1"), "transcript"),
    (event("error", error="boom"), "error"),
    (event("response.text.delta", delta="x"), "unknown event type 'response.text.delta'"),
])
def test_a_frame_that_breaks_the_protocol_is_a_protocol_error_naming_it(frame: str | bytes, problem: str) -> None:
    codec, _ = connected()
    with pytest.raises(ProtocolError, match=problem):
        codec.decode(frame)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["type", "transcript", "delta", "error", "code", "message", "item_id"]),
                        inner, max_size=5), max_leaves=12))
def test_generated_frames_raise_nothing_but_protocol_error(value: object) -> None:
    codec, _ = connected()
    try:
        codec.decode(json.dumps(value))
    except ProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=8))
def test_a_documented_transcription_round_trips(words: list[str]) -> None:
    codec, _ = connected()
    codec.encode_control("close_stream")
    [f] = codec.decode(completed(" ".join(words)))
    assert isinstance(f, Final) and f.text.split() == words and stream_finished(codec)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=400), st.lists(st.integers(1, 50), max_size=20))
def test_the_upsampler_gives_the_same_samples_however_the_audio_is_chunked(samples: list[int], cuts: list[int]) -> None:
    pcm = np.array(samples, dtype="<i2").tobytes()
    whole = Upsampler().feed(pcm)
    assert len(whole) // 2 == 3 * len(samples) // 2
    up, pieces, at = Upsampler(), [], 0
    for n in cuts:
        pieces.append(up.feed(pcm[2 * at:2 * (at + n)]))
        at += n
    pieces.append(up.feed(pcm[2 * at:]))
    assert b"".join(pieces) == whole
    out = np.frombuffer(whole, dtype="<i2")
    assert list(out[2::3]) == samples[1::2][:len(out[2::3])]  # every third output is an input sample


# --- end to end against the stand-in -------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="scripted") as srv:
        yield srv


SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


async def test_scripted_words_are_exact_through_the_harness_client(server: ReferenceServer) -> None:
    pcm = b"\x00" * (12 * 9600)  # 12 scripted words of 300 ms: 36 chunks of 100 ms
    params = SessionParams(engine="scripted", script=SCRIPT)
    out = await AsyncSessionClient(get_codec("openai-realtime"), StreamTarget(server.url, server.api_key),
                                   SessionPlan(pcm=pcm, params=params, pace=0, seed=1)).run()
    assert out.ok, out.error
    assert out.close_code == 1000  # the client's close once the commit was answered
    assert out.transcript.split() == SCRIPT.split()  # every word: the upsampler holds no tail back
    names = [e.name for _, e in out.history.events("info")]
    assert names[:2] == ["session.created", "session.updated"]  # the opening session.update was taken
    assert "input_audio_buffer.committed" in names
    assert [f.text for f in out.history.unique_finals()] == [SCRIPT]
