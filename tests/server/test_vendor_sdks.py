"""Each vendor's OFFICIAL Python SDK (and Wyoming's own client), unchanged, against the reference server as its vendor:
PocketSphinx transcribes two committed flite fixtures sent the way that SDK sends audio, and the text
that comes back through the SDK is within WER 0.15 of what was said. Each connection is a session
(``GET /v1/sessions/{id}`` has the same words) and a record at ``/debug/connections``.

The SDKs come from the ``vendors`` extra (bootstrap installs it): these tests never skip."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import uuid
from collections.abc import Iterator

import pytest

from harness.checks.accuracy import word_error_rate
from harness.services import ReferenceServer
from vendor_audio import TEXT, chunks, connections, fixture_audio, session_when_done

MAX_WER = 0.15


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="pocketsphinx") as srv:
        yield srv


def assert_heard(text: str) -> None:
    wer, counts = word_error_rate(TEXT, text)
    assert wer < MAX_WER, f"WER {wer:.2f} for {text!r} (said {TEXT!r}): {counts}"


async def test_openai_sdk_realtime_transcription_session(server: ReferenceServer) -> None:
    """openai's AsyncOpenAI(websocket_base_url=...).realtime.connect(intent=transcription): PCM16
    at 24 kHz, server VAD off, one commit; the transcript comes as delta + completed."""
    from openai import AsyncOpenAI

    tag = f"openai-{uuid.uuid4().hex[:8]}"
    client = AsyncOpenAI(api_key=server.api_key, websocket_base_url=f"{server.ws_url}/v1")
    audio = fixture_audio("pcm_s16le", 24000)
    events: list[str] = []
    async with client.realtime.connect(extra_query={"intent": "transcription", "tag": tag}) as conn:
        first = await conn.recv()
        assert first.type == "session.created" and first.session.type == "transcription"
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "gpt-4o-transcribe"},
            "turn_detection": None}}})
        for chunk in chunks(audio, 4800):  # 100 ms
            await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        await conn.input_audio_buffer.commit()
        async with asyncio.timeout(30):
            async for event in conn:
                events.append(event.type)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    transcript = event.transcript
                    break
    assert events[:2] == ["session.updated", "input_audio_buffer.committed"], events
    assert "conversation.item.input_audio_transcription.delta" in events
    assert_heard(transcript)
    [record] = await connections(server, tag=tag)
    assert record["protocol"] == "openai-realtime" and [name for _, name in record["controls"]].count("commit") == 1
    body = await session_when_done(server, record["session_id"])
    assert body["transcript"] == transcript and body["metadata"]["tag"] == tag


async def test_assemblyai_sdk_streaming_v3(server: ReferenceServer) -> None:
    """assemblyai's StreamingClient(StreamingClientOptions(api_host=...)): 100 ms PCM chunks at
    16 kHz, formatted turns, terminate=True waits for Termination."""
    from assemblyai.streaming.v3 import StreamingClient, StreamingClientOptions, StreamingEvents, StreamingParameters

    turns, errors, begins = [], [], []
    terminated = threading.Event()
    # terminate_timeout: the audio goes faster than real time, so the last turn waits on the engine
    client = StreamingClient(StreamingClientOptions(api_key=server.api_key, api_host=server.ws_url,
                                                    terminate_timeout=30))
    client.on(StreamingEvents.Begin, lambda _c, event: begins.append(event.id))
    client.on(StreamingEvents.Turn, lambda _c, event: turns.append(event))
    client.on(StreamingEvents.Termination, lambda _c, _event: terminated.set())
    client.on(StreamingEvents.Error, lambda _c, error: errors.append(error))

    def run() -> None:
        client.connect(StreamingParameters(sample_rate=16000, format_turns=True))
        client.stream(chunks(fixture_audio("pcm_s16le", 16000), 3200))
        client.disconnect(terminate=True)

    await asyncio.to_thread(run)
    assert not errors and terminated.is_set(), f"errors {errors}, terminated {terminated.is_set()}"
    formatted = [t for t in turns if t.end_of_turn and t.turn_is_formatted]
    unformatted = [t for t in turns if t.end_of_turn and not t.turn_is_formatted]
    assert len(formatted) == len(unformatted) >= 1
    assert all(w.word_is_final for t in unformatted for w in t.words)
    text = " ".join(t.transcript for t in unformatted)
    assert_heard(text)
    body = await session_when_done(server, begins[0])
    assert body["transcript"] == text and body["metadata"]["protocol"] == "assemblyai"


async def test_speechmatics_sdk_realtime(server: ReferenceServer) -> None:
    """speechmatics-rt's AsyncClient(url=...).transcribe(): raw 32-bit float PCM at 44.1 kHz,
    partials on; AddTranscript finals, then EndOfTranscript ends transcribe()."""
    from speechmatics.rt import (AsyncClient, AudioEncoding, AudioFormat, ServerMessageType,
                                 TranscriptionConfig)

    tag = f"sm-{uuid.uuid4().hex[:8]}"
    finals: list[str] = []
    partials: list[str] = []
    started: list[str] = []
    client = AsyncClient(api_key=server.api_key, url=f"{server.ws_url}/v2?tag={tag}")
    client.on(ServerMessageType.RECOGNITION_STARTED, lambda msg: started.append(msg["id"]))
    client.on(ServerMessageType.ADD_TRANSCRIPT, lambda msg: finals.append(msg["metadata"]["transcript"]))
    client.on(ServerMessageType.ADD_PARTIAL_TRANSCRIPT, lambda msg: partials.append(msg["metadata"]["transcript"]))
    audio = fixture_audio("pcm_f32le", 44100)
    await client.transcribe(io.BytesIO(audio), transcription_config=TranscriptionConfig(language="en",
                                                                                       enable_partials=True),
                            audio_format=AudioFormat(encoding=AudioEncoding.PCM_F32LE, sample_rate=44100,
                                                     chunk_size=17640),  # 100 ms
                            timeout=60)
    await client.close()
    text = " ".join(f.strip() for f in finals)
    assert_heard(text)
    assert partials, "no AddPartialTranscript with enable_partials"
    [record] = await connections(server, tag=tag)
    assert record["protocol"] == "speechmatics" and record["session_id"] == started[0]
    assert record["audio"]["total_frames"] == -(-len(audio) // 17640) and record["close_code"] == 1000
    assert record["closed_by"] == "server" and [name for _, name in record["controls"]][-1] == "EndOfStream"
    body = await session_when_done(server, started[0])
    assert body["transcript"] == text


def deepgram_client(server: ReferenceServer):  # noqa: ANN201 - the SDK's client type
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment

    env = DeepgramClientEnvironment(base=server.url, production=server.ws_url, agent=server.ws_url,
                                    agent_rest=server.url)
    return AsyncDeepgramClient(api_key=server.api_key, environment=env)


async def deepgram_stream(server: ReferenceServer, audio: bytes, step: int, **options: str) -> tuple[list, str]:
    """Streams ``audio`` through the Deepgram SDK in ``step``-byte chunks, CloseStream, and
    returns the final Results and the request id."""
    finals, request_id = [], ""
    async with deepgram_client(server).listen.v1.connect(**options) as socket:
        for chunk in chunks(audio, step):
            await socket.send_media(chunk)
        await socket.send_close_stream()
        async with asyncio.timeout(30):
            async for message in socket:
                if getattr(message, "type", None) == "Results" and message.is_final:
                    finals.append(message)
                    request_id = message.metadata.request_id
                elif getattr(message, "type", None) == "Metadata":
                    request_id = message.request_id
                    break
    return finals, request_id


async def test_deepgram_sdk_listen_v1_resampled_studio_audio(server: ReferenceServer) -> None:
    """deepgram-sdk 7.x's AsyncDeepgramClient(environment=...).listen.v1.connect(): PCM at
    48 kHz, resampled by the server to the engine's 16 kHz; CloseStream ends it; tag recorded."""
    tag = f"dg-{uuid.uuid4().hex[:8]}"
    audio = fixture_audio("pcm_s16le", 48000)
    finals, request_id = await deepgram_stream(server, audio, 9600, model="nova-3", encoding="linear16",
                                               sample_rate="48000", channels="1", smart_format="true", tag=tag)
    text = " ".join(f.channel.alternatives[0].transcript for f in finals if f.channel.alternatives[0].transcript)
    assert_heard(text)
    [record] = await connections(server, tag=tag)
    assert record["protocol"] == "deepgram" and record["session_id"] == request_id
    assert [name for _, name in record["controls"]] == ["CloseStream"]
    body = await session_when_done(server, request_id)
    assert body["transcript"] == text and body["metadata"]["tag"] == tag


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
async def test_deepgram_sdk_telephony_audio_word_for_word_with_the_scripted_engine(server: ReferenceServer,
                                                                                    encoding: str) -> None:
    """G.711 at 8 kHz (a phone call) through the SDK, scripted engine (model=scripted and the
    script as an extra query parameter): one word per 300 ms of audio after conversion, so every
    word of the script comes back in order only if no audio was lost or invented on the way.
    (PocketSphinx's wideband model does not read 4 kHz telephone audio well: the README says by
    how much, and integrity through telephony is checked word for word like this.)"""
    script = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    audio = fixture_audio(encoding, 8000, tail_s=0.0)[:8000 * 3]  # 3 s: ten words of 300 ms
    finals, request_id = await deepgram_stream(
        server, audio, 800, model="scripted", encoding=encoding, sample_rate="8000",
        request_options={"additional_query_parameters": {"script": script}})
    words = [w.word for f in finals for w in f.channel.alternatives[0].words]
    assert words == script.split()[:10]
    body = await session_when_done(server, request_id)
    assert body["engine"] == "scripted" and body["received_offset"] == 3 * 32000


async def test_wyoming_async_tcp_client(server: ReferenceServer) -> None:
    """wyoming's AsyncTcpClient, as Home Assistant uses it: describe -> info, then transcribe,
    audio-start, 100 ms audio-chunks at 48 kHz, audio-stop, and read until the transcript (the
    streamed transcript-chunks on the way add up to it)."""
    from urllib.parse import urlsplit

    from wyoming.asr import Transcribe, Transcript, TranscriptChunk
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    address = urlsplit(server.wyoming_url)
    async with AsyncTcpClient(address.hostname, address.port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await client.read_event())
        [program] = info.asr
        assert program.supports_transcript_streaming and "pocketsphinx" in [m.name for m in program.models]
    audio = fixture_audio("pcm_s16le", 48000)
    chunks_text: list[str] = []
    async with AsyncTcpClient(address.hostname, address.port) as client, asyncio.timeout(60):
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=48000, width=2, channels=1).event())
        for chunk in chunks(audio, 9600):  # 100 ms
            await client.write_event(AudioChunk(rate=48000, width=2, channels=1, audio=chunk).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            assert event is not None, "the server closed before the transcript"
            if TranscriptChunk.is_type(event.type):
                chunks_text.append(TranscriptChunk.from_event(event).text)
            if Transcript.is_type(event.type):
                transcript, session_id = Transcript.from_event(event).text, event.data["session_id"]
                break
    assert_heard(transcript)
    assert "".join(chunks_text) == transcript
    body = await session_when_done(server, session_id)
    assert body["transcript"] == transcript and body["metadata"]["protocol"] == "wyoming"
