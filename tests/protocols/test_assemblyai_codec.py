"""The AssemblyAI v3 codec: hand-made messages in the documented shapes (Begin, Turn, Termination,
Error), generated frames (nothing but ProtocolError escapes), and end to end through the harness's
own client against the reference server standing in for AssemblyAI."""

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
from harness.protocols.events import Closed, Error, Final, Info, Partial
from harness.services import ReferenceServer

TARGET = StreamTarget("http://127.0.0.1:8700", "aai-key")


def turn(order: int, words: list[tuple[str, int, int]], *, end: bool, formatted: bool = False) -> str:
    return json.dumps({
        "type": "Turn", "turn_order": order, "turn_is_formatted": formatted, "end_of_turn": end,
        "transcript": " ".join(w for w, _, _ in words) if end else "", "end_of_turn_confidence": 1.0 if end else 0.0,
        "words": [{"start": s, "end": e, "text": w, "confidence": 0.8, "word_is_final": end} for w, s, e in words],
    })


def test_turns_become_partials_then_one_final_each_numbered_in_order() -> None:
    codec = get_codec("assemblyai")
    assert isinstance(codec.decode(json.dumps({"type": "Begin", "id": "s-1", "expires_at": 1}))[0], Info)
    assert codec.learned_session_id == "s-1"
    [p] = codec.decode(turn(0, [("hello", 100, 400)], end=False))
    assert isinstance(p, Partial) and (p.segment_id, p.text, p.start_ms, p.end_ms) == (0, "hello", 100, 400)
    [f0] = codec.decode(turn(0, [("hello", 100, 400), ("there", 400, 700)], end=True))
    assert isinstance(f0, Final) and f0.segment_id == 0 and f0.text == "hello there"
    assert [w.word for w in f0.words] == ["hello", "there"] and f0.end_ms == 700
    [fmt] = codec.decode(turn(0, [("Hello", 100, 400)], end=True, formatted=True))
    assert isinstance(fmt, Info) and fmt.name == "formatted_turn"  # not a second final
    [f1] = codec.decode(turn(1, [("again", 900, 1200)], end=True))
    assert isinstance(f1, Final) and f1.segment_id == 1


def test_times_are_on_the_session_clock_after_a_reconnect() -> None:
    codec = get_codec("assemblyai")
    session = codec.local_session(SessionParams())
    codec.connect_request(TARGET, session, resume_offset=64_000)  # 2 s sent before this connection
    [f] = codec.decode(turn(0, [("late", 100, 400)], end=True))
    assert (f.start_ms, f.end_ms) == (2100, 2400)


def test_connect_request_controls_and_close_codes() -> None:
    codec = get_codec("assemblyai")
    req = codec.connect_request(TARGET, codec.local_session(SessionParams(engine="scripted", script="a b")))
    url = urlsplit(req.url)
    assert url.path == "/v3/ws" and req.headers == {"Authorization": "aai-key"}
    assert parse_qs(url.query) == {"sample_rate": ["16000"], "encoding": ["pcm_s16le"], "format_turns": ["false"],
                                   "speech_model": ["scripted"], "script": ["a b"]}
    assert [json.loads(codec.encode_control(k))["type"] for k in ("keepalive", "finalize", "close_stream")] == \
        ["KeepAlive", "ForceEndpoint", "Terminate"]
    error, closed = codec.close_events(3007, "Input Duration Violation: 10 ms")
    assert isinstance(error, Error) and error.code == "3007" and not error.retryable
    assert isinstance(closed, Closed) and closed.code == 3007
    assert [type(e) for e in codec.close_events(1000)] == [Closed]
    assert len(codec.encode_audio(0, b"\x01\x00" * 10)) == 1600  # padded to AssemblyAI's 50 ms minimum
    assert codec.encode_audio(0, b"\x01\x00" * 1600) == b"\x01\x00" * 1600


@pytest.mark.parametrize("frame", ["not json", "[]", json.dumps({"type": "Turn"}), json.dumps({"type": "Nope"}),
                                   json.dumps({"type": "Turn", "end_of_turn": True, "words": [{"text": 1}]})])
def test_a_frame_that_breaks_the_protocol_is_a_protocol_error(frame: str) -> None:
    with pytest.raises(ProtocolError):
        get_codec("assemblyai").decode(frame)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["type", "words", "end_of_turn", "transcript", "start", "end", "text", "id"]),
                        inner, max_size=5), max_leaves=12))
def test_generated_frames_raise_nothing_but_protocol_error(value: object) -> None:
    try:
        get_codec("assemblyai").decode(json.dumps(value))
    except ProtocolError:
        pass


# --- end to end against the stand-in -------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="scripted") as srv:
        yield srv


SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


async def test_scripted_words_are_exact_through_the_harness_client(server: ReferenceServer) -> None:
    pcm = b"\x00" * (12 * 9600)  # 12 scripted words of 300 ms: 36 chunks of 100 ms
    params = SessionParams(engine="scripted", script=SCRIPT)
    out = await AsyncSessionClient(get_codec("assemblyai"), StreamTarget(server.url, server.api_key),
                                   SessionPlan(pcm=pcm, params=params, pace=0, seed=1)).run()
    assert out.ok, out.error
    assert out.close_code == 1000 and out.session_id
    assert out.transcript.split() == SCRIPT.split()
    finals = out.history.unique_finals()
    assert [f.segment_id for f in finals] == list(range(len(finals)))
    names = [e.name for _, e in out.history.events("info")]
    assert names[0] == "Begin" and names[-1] == "Termination"
