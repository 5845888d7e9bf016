"""The recording proxy: what a relay sent to the vendor and what came back, as a VendorLeg.

The upstream is a tiny vendor double (websockets): it answers each text message ``{"type":
"KeepAlive"}`` with nothing, ``{"type": "CloseStream"}`` with a final ``Results`` and a close
1000, and closes 1011 when it gets ``{"type": "die"}``; a refusing double answers 429."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.relay.tap import RecordingProxy, protocol_of, session_schedule, tag_of


async def _vendor_double(ws) -> None:
    async for msg in ws:
        if isinstance(msg, str):
            kind = json.loads(msg).get("type")
            if kind == "CloseStream":
                await ws.send(json.dumps({"type": "Results", "is_final": True,
                                          "channel": {"alternatives": [{"transcript": "alpha bravo"}]}}))
                await ws.close(1000)
            elif kind == "die":
                await ws.close(1011, "NET-0000")


@pytest.fixture
async def vendor():
    async with serve(_vendor_double, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_tag_and_protocol_come_from_the_path():
    assert tag_of("/v1/listen?model=x&tag=relay-1") == "relay-1" and tag_of("/v1/listen") is None
    assert protocol_of("/v1/listen?tag=a") == "deepgram" and protocol_of("/v3/ws") == "assemblyai"


async def test_a_connection_is_recorded_with_audio_controls_results_and_close(vendor):
    async with RecordingProxy(vendor) as proxy:
        async with connect(f"{proxy.ws_url}/v1/listen?tag=s-1") as ws:
            for _ in range(3):
                await ws.send(bytes(3200))
                await asyncio.sleep(0.02)
            await ws.send(json.dumps({"type": "KeepAlive"}))
            await ws.send(json.dumps({"type": "CloseStream"}))
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
        await asyncio.sleep(0.1)
        leg = proxy.vendor_leg()
    (c,) = leg.connections
    assert c.tag == "s-1" and c.protocol == "deepgram" and c.accepted
    assert c.audio.total_bytes == 9600 and c.audio.total_frames == 3 and len(c.audio.frames) == 3
    assert 15 * 10**6 <= c.audio.max_gap_ns  # frames 20 ms apart
    assert [name for _, name in c.controls] == ["KeepAlive", "CloseStream"]
    assert c.final_texts() == ["alpha bravo"]
    assert c.close_code == 1000 and c.closed_by == "server" and c.closed_ns >= c.opened_ns


async def test_a_vendor_close_and_a_refused_handshake_are_recorded(vendor):
    async with RecordingProxy(vendor) as proxy:
        async with connect(f"{proxy.ws_url}/v1/listen?tag=s-2") as ws:
            await ws.send(json.dumps({"type": "die"}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        await asyncio.sleep(0.1)
        (c,) = proxy.vendor_leg().connections
    assert (c.close_code, c.close_reason, c.closed_by) == (1011, "NET-0000", "server")

    async def refuse(connection, request):
        return connection.respond(429, "Too Many Requests\n")

    async with serve(_vendor_double, "127.0.0.1", 0, process_request=refuse) as server:
        async with RecordingProxy(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}") as proxy:
            with pytest.raises(InvalidStatus):
                await connect(f"{proxy.ws_url}/v1/listen?tag=s-3")
            (c,) = proxy.vendor_leg().connections
    assert c.handshake_status == 429 and not c.accepted and c.tag == "s-3"


async def test_refusals_from_the_schedule_answer_the_status_with_retry_after(vendor):
    async with RecordingProxy(vendor) as proxy:
        proxy.use_session_faults([{"type": "refuse_handshake", "preset": "deepgram-429", "retry_after": "1",
                                   "target": {"first": 2}}])
        for _ in range(2):
            with pytest.raises(InvalidStatus) as err:
                await connect(f"{proxy.ws_url}/v1/listen?tag=s-4")
            assert err.value.response.status_code == 429 and err.value.response.headers["Retry-After"] == "1"
        async with connect(f"{proxy.ws_url}/v1/listen?tag=s-4"):
            pass
        await asyncio.sleep(0.1)
        conns = proxy.vendor_leg().connections
    assert [c.handshake_status for c in conns] == [429, 429, 101]
    assert [w.kind for c in conns for w in c.faults] == ["refuse_handshake", "refuse_handshake"]


async def test_a_scheduled_cut_targets_the_sessions_own_connection_and_is_recorded(vendor):
    async with RecordingProxy(vendor) as proxy:
        async with connect(f"{proxy.ws_url}/v1/listen?tag=earlier"):
            pass  # an earlier session's connection: the session's faults count from after it
        proxy.use_session_faults([{"type": "cut", "at": {"audio_bytes": 6400}, "target": {"nth": 1}}])
        async with connect(f"{proxy.ws_url}/v1/listen?tag=s-5") as ws:
            with pytest.raises(ConnectionClosed):
                for _ in range(10):
                    await ws.send(bytes(3200))
                    await asyncio.sleep(0.02)
                await ws.recv()
        await asyncio.sleep(0.1)
        earlier, cut = proxy.vendor_leg().connections
    assert not earlier.faults and earlier.close_code != 1006
    assert (cut.close_code, cut.closed_by) == (1006, "proxy") and [w.kind for w in cut.faults] == ["cut"]
    assert cut.audio.total_bytes == 6400  # the frame that reached the trigger went through, then the cut


def test_session_faults_count_the_sessions_connections():
    schedule = session_schedule([{"type": "cut", "target": {"nth": 1}},
                                 {"type": "refuse_handshake", "status": 503, "target": {"first": 3}},
                                 {"type": "stall"}], before=7)
    assert [s.target.describe() for s in schedule] == [{"nth": 8}, {"first": 10}, "all"]
    with pytest.raises(ValueError, match=r"by \{nth = N\} or \{first = N\}, got \{'every': 2\}"):
        session_schedule([{"type": "cut", "target": {"every": 2}}], before=0)
    with pytest.raises(ValueError, match="target nth must be a whole number >= 1, got 0"):
        session_schedule([{"type": "cut", "target": {"nth": 0}}], before=0)


def test_extra_query_parameters_are_appended_and_never_override_the_clients():
    from harness.relay.tap import with_query

    assert with_query("/v1/listen", {"script": "a b"}) == "/v1/listen?script=a+b"
    assert with_query("/v1/listen?model=x", {"script": "a"}) == "/v1/listen?model=x&script=a"
    assert with_query("/v1/listen?script=mine", {"script": "theirs"}) == "/v1/listen?script=mine"


async def test_the_vendor_sees_the_extra_query_a_client_library_cannot_send():
    seen: list[str] = []

    async def record_path(ws) -> None:
        seen.append(ws.request.path)
        await ws.close(1000)

    async with serve(record_path, "127.0.0.1", 0) as server:
        upstream = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with RecordingProxy(upstream, extra_query={"script": "alpha bravo"}) as proxy:
            async with connect(f"{proxy.ws_url}/v1/listen?model=nova-3") as ws:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            await asyncio.sleep(0.1)
            leg = proxy.vendor_leg()
    assert seen == ["/v1/listen?model=nova-3&script=alpha+bravo"]
    assert leg.connections[0].path == "/v1/listen"
