"""The reference server's Wyoming endpoints, over TCP (``--wyoming-port``) and over a WebSocket
(``/v1/wyoming``): word for word with the scripted engine, events split anywhere on TCP, the
documented errors for bad frames and bad order, and the adapter fed events directly. Events are
written and read with the ``wyoming`` package's own framing (``async_write_event`` /
``async_read_event``), an implementation independent of the server's."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from starlette.datastructures import Headers, QueryParams
from wyoming.event import Event, async_read_event, write_event

from harness.services import ReferenceServer
from reference_server.config import ServerConfig
from reference_server.wire.adapter import Close, Control, Open, SendRaw
from reference_server.wire.wyoming import WyomingAdapter, WyomingTcpAdapter
from reference_server.wire.wyoming_frames import EventReader
from srv_client import SCRIPT, WORD_BYTES, expected_words, silence
from vendor_audio import connections, session_when_done

FORMAT = {"rate": 16000, "width": 2, "channels": 1}


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="scripted", extra_args=["--idle-timeout-s", "2"]) as srv:
        yield srv


async def tcp(srv: ReferenceServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = urlsplit(srv.wyoming_url)
    return await asyncio.wait_for(asyncio.open_connection(address.hostname, address.port), 5)


async def read_to_end(reader: asyncio.StreamReader, timeout: float = 15) -> list[Event]:
    """Every event until the server ends the stream (bounded)."""
    events = []
    async with asyncio.timeout(timeout):
        while (event := await async_read_event(reader)) is not None:
            events.append(event)
    return events


def wire(event: Event) -> bytes:
    """An event's bytes as the wyoming package writes them (its own writer, into memory)."""
    sink = io.BytesIO()
    write_event(event, sink)
    return sink.getvalue()


def transcription(words: int, tag: str) -> list[bytes]:
    """transcribe (scripted), audio-start, one audio-chunk per word, audio-stop: as bytes."""
    out = [wire(Event("transcribe", {"name": "scripted", "script": SCRIPT, "language": "en", "tag": tag})),
           wire(Event("audio-start", FORMAT))]
    out += [wire(Event("audio-chunk", FORMAT, silence(WORD_BYTES))) for _ in range(words)]
    return out + [wire(Event("audio-stop"))]


def test_tcp_transcribes_word_for_word_with_events_split_anywhere(server: ReferenceServer) -> None:
    stream = b"".join(transcription(5, "split"))

    async def go() -> tuple[list[Event], dict[str, Any]]:
        reader, writer = await tcp(server)
        for i in range(0, len(stream), 997):  # cuts through headers, data blocks and payloads
            writer.write(stream[i:i + 997])
            await writer.drain()
        events = await read_to_end(reader)
        writer.close()
        return events, await session_when_done(server, events[0].data["session_id"])

    events, body = asyncio.run(go())
    kinds = [e.type for e in events]
    assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript-stop", "transcript"], kinds
    chunks = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    transcript = events[-1].data
    assert transcript["text"].split() == expected_words(5) and chunks == transcript["text"]
    assert transcript["session_id"] == events[0].data["session_id"]
    assert body["transcript"].split() == expected_words(5) and body["metadata"]["protocol"] == "wyoming"


def test_describe_is_answered_with_the_engines_as_models(server: ReferenceServer) -> None:
    async def go() -> Event | None:
        reader, writer = await tcp(server)
        writer.write(wire(Event("describe")))
        await writer.drain()
        event = await asyncio.wait_for(async_read_event(reader), 5)
        writer.close()
        return event

    info = asyncio.run(go())
    assert info is not None and info.type == "info"
    [program] = info.data["asr"]
    assert [m["name"] for m in program["models"]] == ["scripted", "pocketsphinx"]  # the default first
    assert program["supports_transcript_streaming"] is True


@pytest.mark.parametrize(("frames", "code", "text"), [
    ([b"this is not a header\n"], "bad_frame", "one JSON object"),
    ([b'{"type": "audio-chunk", "payload_length": -4}\n'], "bad_frame", "payload_length"),
    ([wire(Event("audio-chunk", FORMAT, silence(100)))], "protocol_error", "audio-chunk before audio-start"),
    ([wire(Event("audio-stop"))], "protocol_error", "audio-stop before audio-start"),
    ([wire(Event("audio-start", {"rate": 16000, "width": 4, "channels": 1}))], "unsupported_audio", "width 2"),
    ([wire(Event("audio-start", {"rate": 11025, "width": 2, "channels": 1}))], "unsupported_audio", "11025"),
    (transcription(1, "fmt")[:2] + [wire(Event("audio-chunk", {**FORMAT, "rate": 8000}, silence(10)))],
     "unsupported_audio", "differs from audio-start"),
    ([wire(Event("audio-start", FORMAT))], "bad_request", "script is required"),  # the scripted default engine
])
def test_tcp_errors_are_error_events_then_the_end(server: ReferenceServer, frames: list[bytes], code: str,
                                                  text: str) -> None:
    async def go() -> list[Event]:
        reader, writer = await tcp(server)
        writer.write(b"".join(frames))
        await writer.drain()
        events = await read_to_end(reader)
        writer.close()
        return events

    events = asyncio.run(go())
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and errors[0].data["code"] == code and text in errors[0].data["text"], events


def test_a_client_that_goes_away_ends_its_session_and_ping_is_answered(server: ReferenceServer) -> None:
    async def go() -> dict[str, Any]:
        reader, writer = await tcp(server)
        for frame in transcription(3, "gone")[:-1]:  # no audio-stop
            writer.write(frame)
        writer.write(wire(Event("ping", {"text": "hi"})))
        await writer.drain()
        start = await asyncio.wait_for(async_read_event(reader), 5)
        pong = None
        while pong is None or pong.type != "pong":
            pong = await asyncio.wait_for(async_read_event(reader), 5)
        assert pong.data == {"text": "hi"}
        writer.transport.abort()
        assert start is not None
        return await session_when_done(server, start.data["session_id"])

    body = asyncio.run(go())
    assert body["state"] == "completed" and body["transcript"].split() == expected_words(3)


def test_a_silent_client_is_let_go_after_the_idle_timeout(server: ReferenceServer) -> None:
    async def go() -> list[Event]:
        reader, writer = await tcp(server)
        writer.write(wire(Event("transcribe")))
        await writer.drain()
        events = await read_to_end(reader, timeout=10)  # --idle-timeout-s 2
        writer.close()
        return events

    [error] = asyncio.run(go())
    assert error.type == "error" and error.data["code"] == "idle_timeout"


def test_health_and_the_startup_line_report_the_tcp_listener(server: ReferenceServer) -> None:
    body = httpx.get(f"{server.url}/health", headers=server.auth_headers(), timeout=5).json()
    assert body["listeners"] == {"wyoming_tcp": server.wyoming_url}
    assert f"wyoming_tcp={server.wyoming_url}" in server.output()


def test_the_websocket_endpoint_takes_whole_events_per_message(server: ReferenceServer) -> None:
    url = f"{server.ws_url}/v1/wyoming"

    async def go() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, open_timeout=5)
        assert refused.value.response.status_code == 401
        auth = {"Authorization": f"Bearer {server.api_key}"}
        async with websockets.connect(url, additional_headers=auth, open_timeout=5) as ws:
            for frame in transcription(2, "ws"):
                await ws.send(frame)
            got = [EventReader().feed(m)[0] for m in [await ws.recv() for _ in range(4)]]
            assert [e.type for e in got] == ["transcript-start", "transcript-chunk", "transcript-stop", "transcript"]
            assert got[-1].data["text"].split() == expected_words(2)
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
        async with websockets.connect(url, additional_headers=auth, open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "describe"}) + "\n")  # a text message: an event without payload
            assert EventReader().feed(await ws.recv())[0].type == "info"
            await ws.send(wire(Event("audio-chunk", FORMAT, silence(100)))[:-3])  # ends inside the event
            [error] = EventReader().feed(await ws.recv())
            assert error.data["code"] == "bad_frame" and "ended inside an event" in error.data["text"]
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    asyncio.run(go())
    records = asyncio.run(connections(server))
    assert {r["path"] for r in records if r["protocol"] == "wyoming"} >= {"/v1/wyoming", "tcp:wyoming"}


# --- the adapter alone (sans-I/O) ----------------------------------------------------------
CONFIG = ServerConfig(api_key="k", engine="scripted")


def adapter(cls: type[WyomingAdapter] = WyomingTcpAdapter) -> WyomingAdapter:
    return cls(QueryParams(""), Headers({}), CONFIG)


def test_adapter_opens_at_audio_start_and_counts_payload_not_framing_as_audio() -> None:
    a = adapter()
    assert a.binary_is_audio is False
    actions = a.on_bytes(wire(Event("transcribe", {"name": "pocketsphinx"})) + wire(Event("audio-start", FORMAT)))
    assert [type(x) for x in actions] == [Control, Control, Open]
    assert a.session_body()["engine"] == "pocketsphinx"
    received, audio = a.on_bytes(wire(Event("audio-chunk", FORMAT, silence(640))))
    assert received.n_bytes == 640 and audio.pcm == silence(640)  # type: ignore[attr-defined]


def test_adapter_drops_unknown_events_and_refuses_a_second_transcription() -> None:
    a = adapter()
    assert a.on_bytes(wire(Event("run-satellite"))) == [Control("dropped:run-satellite")]
    a.on_bytes(wire(Event("audio-start", FORMAT)))
    send, close = a.on_bytes(wire(Event("transcribe")))
    assert isinstance(send, SendRaw) and isinstance(close, Close) and close.code == 1008
    assert b"one transcription per connection" in send.frame  # type: ignore[operator]


def test_adapter_sends_finals_as_chunks_and_never_interim_results() -> None:
    a = adapter()
    assert a.on_result({"text": "maybe", "start_ms": 0, "end_ms": 10}, is_final=False) == []
    [first] = a.on_result({"text": "hello", "start_ms": 0, "end_ms": 10}, is_final=True)
    [second] = a.on_result({"text": "world", "start_ms": 10, "end_ms": 20}, is_final=True)
    texts = [EventReader().feed(x.frame)[0].data["text"] for x in (first, second)]  # type: ignore[union-attr]
    assert texts == ["hello", " world"]
    stop, transcript, close = a.on_finished()
    assert EventReader().feed(transcript.frame)[0].data["text"] == "hello world"  # type: ignore[union-attr]
    assert isinstance(close, Close) and close.code == 1000
