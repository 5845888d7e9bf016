"""The reference server's Socket.IO endpoint (``/socket.io``), driven by python-socketio's own
``AsyncClient`` as a client author would write it: the API key at connect, join_session,
binary audio_chunks acknowledged by offset, the scripted engine's words back word for word,
end_session, and the documented errors (none of which may disturb the session)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import socketio

from harness.drivers.asyncio_driver import StreamConnectError, open_stream
from harness.protocols import SessionParams, StreamTarget, get_codec
from harness.services import ReferenceServer
from srv_client import SCRIPT, WORD_BYTES, expected_words, silence
from vendor_audio import connections, session_when_done


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="scripted") as srv:
        yield srv


class Client:
    """An AsyncClient that keeps every event it receives, in order, and waits for one by name."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self._new = asyncio.Event()

        @self.sio.on("*")
        async def any_event(event: str, data: Any = None) -> None:
            self.events.append((event, data))
            self._new.set()

        @self.sio.event
        async def disconnect(reason: Any = None) -> None:
            self.disconnected.set()

        @self.sio.event
        async def connect_error(data: Any = None) -> None:
            self.events.append(("connect_error", data))

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10) -> Any:
        """The ``count``-th event called ``name`` (bounded wait naming what did not come)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = [d for e, d in self.events if e == name]
                    if len(found) >= count:
                        return found[count - 1]
                    self._new.clear()
                    await self._new.wait()
        except TimeoutError:
            raise AssertionError(f"no {name} #{count} within {timeout} s; got {[e for e, _ in self.events]}") from None


@pytest.fixture
async def client(server: ReferenceServer) -> AsyncIterator[Client]:
    c = Client()
    await c.sio.connect(server.url, auth={"token": server.api_key}, transports=["websocket"], wait_timeout=10)
    yield c
    await c.sio.disconnect()


async def join(c: Client, tag: str) -> str:
    await c.sio.emit("join_session", {"engine": "scripted", "script": SCRIPT, "sample_rate": 16000,
                                      "encoding": "pcm_s16le", "tag": tag})
    return (await c.wait_for("joined_session"))["session_id"]


async def test_a_session_word_for_word_with_acks_by_offset(server: ReferenceServer, client: Client) -> None:
    sid = await join(client, "words")
    for i in range(4):
        await client.sio.emit("audio_chunk", {"session_id": sid, "seq": i + 1, "offset": i * WORD_BYTES,
                                              "audio": silence(WORD_BYTES)})
    last_ack = await client.wait_for("audio_acknowledged", 4)
    assert last_ack == {"session_id": sid, "seq": 4, "received_offset": 4 * WORD_BYTES}
    await client.sio.emit("end_session", {"session_id": sid})
    done = await client.wait_for("session_finalized")
    finals = [d for e, d in client.events if e == "transcript_final"]
    assert " ".join(f["text"] for f in finals).split() == expected_words(4)
    assert [f["segment_id"] for f in finals] == list(range(len(finals)))
    assert all(w["word"] for f in finals for w in f["words"])
    assert done == {"session_id": sid, "transcript": " ".join(expected_words(4)), "segments": len(finals)}
    assert not client.disconnected.is_set()  # the socket stays open, as a Flask-SocketIO app leaves it
    body = await session_when_done(server, sid)
    assert body["transcript"].split() == expected_words(4) and body["metadata"]["protocol"] == "socketio"


async def test_errors_name_the_problem_and_do_not_disturb_the_session(server: ReferenceServer,
                                                                      client: Client) -> None:
    await client.sio.emit("audio_chunk", {"audio": silence(10)})
    assert (await client.wait_for("error"))["code"] == "not_joined"
    sid = await join(client, "errors")
    await client.sio.emit("audio_chunk", {"session_id": sid, "offset": 0, "audio": silence(WORD_BYTES)})
    await client.sio.emit("audio_chunk", {"session_id": sid, "offset": 0, "audio": silence(WORD_BYTES)})  # again
    mismatch = await client.wait_for("error", 2)
    assert mismatch["code"] == "offset_mismatch" and mismatch["expected_offset"] == WORD_BYTES
    await client.sio.emit("audio_chunk", {"session_id": "someone-else", "audio": silence(2)})
    assert (await client.wait_for("error", 3))["code"] == "unknown_session"
    await client.sio.emit("audio_chunk", {"session_id": sid, "audio": "not base64!"})
    assert (await client.wait_for("error", 4))["code"] == "bad_payload"
    await client.sio.emit("transcribe_please", {})
    assert (await client.wait_for("error", 5))["code"] == "unknown_event"
    await client.sio.emit("join_session", {})
    assert (await client.wait_for("error", 6))["code"] == "already_joined"
    # base64 audio is taken too; the session has exactly two words of audio
    await client.sio.emit("audio_chunk", {"session_id": sid, "offset": WORD_BYTES,
                                          "audio": base64.b64encode(silence(WORD_BYTES)).decode()})
    assert (await client.wait_for("audio_acknowledged", 2))["received_offset"] == 2 * WORD_BYTES
    await client.sio.emit("end_session", {"session_id": sid})
    await client.wait_for("session_finalized")
    assert (await session_when_done(server, sid))["transcript"].split() == expected_words(2)


async def test_a_bad_audio_format_is_refused_and_another_join_may_follow(client: Client) -> None:
    await client.sio.emit("join_session", {"engine": "scripted", "script": SCRIPT, "sample_rate": 11025})
    error = await client.wait_for("error")
    assert error["code"] == "bad_audio_format" and "11025" in error["message"]
    sid = await join(client, "after-refusal")
    assert sid


async def test_a_wrong_key_is_refused_at_connect(server: ReferenceServer) -> None:
    c = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await c.sio.connect(server.url, auth={"token": "wrong"}, transports=["websocket"], wait_timeout=10)
    [(_, refusal)] = c.events
    assert "unauthorized" in refusal["message"] and refusal["data"] == {"status": 401}
    # the harness's own transport reports that refusal as the handshake's status
    codec = get_codec("socketio")
    with pytest.raises(StreamConnectError) as refused:
        await open_stream(codec, StreamTarget(server.url, "wrong"), codec.local_session(SessionParams()))
    assert refused.value.status == 401 and "unauthorized" in refused.value.error
    header = Client()
    await header.sio.connect(server.url, headers={"Authorization": f"Bearer {server.api_key}"},
                             transports=["websocket"], wait_timeout=10)
    await header.sio.disconnect()


async def test_a_socket_that_goes_away_ends_its_session(server: ReferenceServer) -> None:
    c = Client()
    await c.sio.connect(server.url, auth={"token": server.api_key}, transports=["websocket"], wait_timeout=10)
    sid = await join(c, "gone")
    for i in range(3):
        await c.sio.emit("audio_chunk", {"session_id": sid, "offset": i * WORD_BYTES, "audio": silence(WORD_BYTES)})
    await c.wait_for("audio_acknowledged", 3)
    await c.sio.disconnect()
    body = await session_when_done(server, sid)
    assert body["state"] == "completed" and body["transcript"].split() == expected_words(3)
    [record] = [r for r in await connections(server) if r["session_id"] == sid]
    assert record["protocol"] == "socketio" and record["audio"]["total_bytes"] == 3 * WORD_BYTES
