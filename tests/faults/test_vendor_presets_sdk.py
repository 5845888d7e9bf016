"""Each vendor preset of the fault proxy, shown to produce what that vendor's OFFICIAL SDK reports
as that vendor's error: the SDK runs unchanged against the reference server's stand-in for its
vendor, through the fault proxy with a one-step schedule.

The SDKs come from the ``vendors`` extra (bootstrap installs it): these tests never skip."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from harness.faults.schedule import Schedule
from harness.faults.wsproxy import WsFaultProxy
from harness.services import ReferenceServer

SILENCE_100MS = b"\x00" * 3200
AUDIO_CHUNKS = 30  # 3 s: the faults below fire after 0.5 s of it


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    # PocketSphinx by default (the vendors' SDKs cannot pass the scripted engine's script);
    # silence gives it nothing to say, which is all these tests need
    with ReferenceServer(engine="pocketsphinx") as srv:
        yield srv


@pytest.fixture
async def proxy_for(server) -> AsyncIterator:
    proxies: list[WsFaultProxy] = []

    async def make(fault: dict) -> WsFaultProxy:
        proxy = await WsFaultProxy(server.ws_url, schedule=Schedule.from_data([fault])).start()
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        await p.close()


def error_at_half_a_second(preset: str) -> dict:
    return {"type": "vendor_error", "preset": preset, "at": {"audio_ms": 500}}


def fired(proxy: WsFaultProxy, kind: str) -> None:
    rec = proxy.fault_record.get(1)
    assert rec is not None and [w.kind for w in rec.faults] == [kind], rec


# --- Deepgram: deepgram-sdk ---------------------------------------------------------------------
def deepgram_client(base: str, key: str):  # noqa: ANN201 - the SDK's client type
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment

    http = base.replace("ws://", "http://")
    env = DeepgramClientEnvironment(base=http, production=base, agent=base, agent_rest=http)
    return AsyncDeepgramClient(api_key=key, environment=env)


async def deepgram_errors(base: str, key: str) -> list[BaseException]:
    """Streams through the SDK's event interface and returns what it reported as ERROR."""
    from deepgram.core.events import EventType

    errors: list[BaseException] = []
    async with deepgram_client(base, key).listen.v1.connect(
            model="scripted", encoding="linear16", sample_rate="16000",
            request_options={"additional_query_parameters": {"script": "alpha bravo charlie"}}) as socket:
        socket.on(EventType.ERROR, errors.append)
        listening = asyncio.create_task(socket.start_listening())
        try:
            for _ in range(AUDIO_CHUNKS):
                await socket.send_media(SILENCE_100MS)
        except Exception as exc:  # noqa: BLE001 - a send after the vendor closed: the SDK raises too
            errors.append(exc)
        await asyncio.wait_for(listening, 20)
    return errors


@pytest.mark.parametrize("preset", ["deepgram-net-0000", "deepgram-net-0001"])
async def test_deepgram_sdk_reports_the_net_error_close(server, proxy_for, preset):
    from websockets.exceptions import ConnectionClosedError

    proxy = await proxy_for(error_at_half_a_second(preset))
    errors = await deepgram_errors(proxy.ws_url, server.api_key)
    closed = [e for e in errors if isinstance(e, ConnectionClosedError)]
    assert closed, errors
    assert closed[0].rcvd.code == 1011 and closed[0].rcvd.reason.startswith(preset[-8:].upper()), closed[0]
    fired(proxy, "vendor_error")


@pytest.mark.parametrize("preset,status", [("deepgram-401", 401), ("deepgram-429", 429), ("deepgram-503", 503)])
async def test_deepgram_sdk_reports_a_refused_handshake_as_its_api_error(server, proxy_for, preset, status):
    from deepgram.core.api_error import ApiError

    proxy = await proxy_for({"type": "refuse_handshake", "preset": preset})
    with pytest.raises(ApiError) as err:
        await deepgram_errors(proxy.ws_url, server.api_key)
    assert err.value.status_code == status
    fired(proxy, "refuse_handshake")


# --- AssemblyAI: assemblyai (Universal-Streaming v3) -------------------------------------------
def assemblyai_errors(base: str, key: str) -> list:
    from assemblyai.streaming.v3 import StreamingClient, StreamingClientOptions, StreamingEvents, StreamingParameters

    errors: list = []
    done = threading.Event()
    client = StreamingClient(StreamingClientOptions(api_key=key, api_host=base, terminate_timeout=10))
    client.on(StreamingEvents.Error, lambda _c, error: (errors.append(error), done.set()))
    client.connect(StreamingParameters(sample_rate=16000))
    try:
        client.stream([SILENCE_100MS] * AUDIO_CHUNKS)
        done.wait(10)
    finally:
        client.disconnect(terminate=False)
    return errors


@pytest.mark.parametrize("preset,code", [("assemblyai-3005", 3005), ("assemblyai-4029", 4029)])
async def test_assemblyai_sdk_reports_the_error_code(server, proxy_for, preset, code):
    proxy = await proxy_for(error_at_half_a_second(preset))
    errors = await asyncio.to_thread(assemblyai_errors, proxy.ws_url, server.api_key)
    assert errors and errors[0].code == code, errors
    fired(proxy, "vendor_error")


async def test_assemblyai_sdk_reports_a_refused_handshake(server, proxy_for):
    proxy = await proxy_for({"type": "refuse_handshake", "preset": "assemblyai-429"})
    errors = await asyncio.to_thread(assemblyai_errors, proxy.ws_url, server.api_key)
    assert errors and errors[0].code == 429 and "429" in str(errors[0]), errors


# --- Speechmatics: speechmatics-rt ------------------------------------------------------------
async def speechmatics_errors(base: str, key: str) -> tuple[list[dict], BaseException | None]:
    import io

    from speechmatics.rt import AsyncClient, AudioEncoding, AudioFormat, ServerMessageType, TranscriptionConfig

    errors: list[dict] = []
    raised = None
    client = AsyncClient(api_key=key, url=f"{base}/v2")
    client.on(ServerMessageType.ERROR, errors.append)
    try:
        await client.transcribe(io.BytesIO(SILENCE_100MS * AUDIO_CHUNKS),
                                transcription_config=TranscriptionConfig(language="en"),
                                audio_format=AudioFormat(encoding=AudioEncoding.PCM_S16LE, sample_rate=16000,
                                                         chunk_size=3200), timeout=20)
    except Exception as exc:  # noqa: BLE001 - what the SDK raises is part of what it reports
        raised = exc
    finally:
        await client.close()
    return errors, raised


@pytest.mark.parametrize("preset,kind", [("speechmatics-quota-exceeded", "quota_exceeded"),
                                         ("speechmatics-idle-timeout", "idle_timeout")])
async def test_speechmatics_sdk_reports_the_error_type(server, proxy_for, preset, kind):
    proxy = await proxy_for(error_at_half_a_second(preset))
    errors, _raised = await speechmatics_errors(proxy.ws_url, server.api_key)
    assert [e.get("type") for e in errors] == [kind], errors
    fired(proxy, "vendor_error")


# --- OpenAI Realtime: openai ------------------------------------------------------------------
async def test_openai_sdk_reports_the_server_error_event(server, proxy_for):
    from openai import AsyncOpenAI

    proxy = await proxy_for(error_at_half_a_second("openai-server-error"))
    client = AsyncOpenAI(api_key=server.api_key, websocket_base_url=f"{proxy.ws_url}/v1")
    events = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        for _ in range(AUDIO_CHUNKS):
            await conn.input_audio_buffer.append(audio=base64.b64encode(b"\x00" * 4800).decode())  # 100 ms at 24 kHz
        try:
            async with asyncio.timeout(20):
                async for event in conn:
                    events.append(event)
                    if event.type == "error":
                        break
        except Exception as exc:  # noqa: BLE001 - the close after the error
            events.append(exc)
    errors = [e for e in events if getattr(e, "type", None) == "error"]
    assert errors and errors[0].error.type == "server_error", events
    fired(proxy, "vendor_error")
