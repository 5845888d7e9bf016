"""The WebSocket fault proxy against a tiny echo server (websockets): pass-through and each rule."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.faults.wsproxy import (
    DOWNSTREAM,
    UPSTREAM,
    CloseWith,
    Delay,
    Drop,
    Duplicate,
    HoldBack,
    Match,
    Reorder,
    StopAnsweringPings,
    WsFaultProxy,
)
from harness.history import History


async def _echo(ws) -> None:
    """Echoes every message; ``{"type": "burst", "n": N}`` answers N numbered finals; headers
    and path are reported on ``{"type": "whoami"}``."""
    async for msg in ws:
        if isinstance(msg, str) and msg.startswith("{"):
            obj = json.loads(msg)
            if obj.get("type") == "burst":
                for i in range(obj["n"]):
                    await ws.send(json.dumps({"type": "final", "segment_id": i}))
                continue
            if obj.get("type") == "whoami":
                await ws.send(json.dumps({"type": "whoami", "path": ws.request.path,
                                          "auth": ws.request.headers.get("Authorization"),
                                          "subprotocol": ws.subprotocol}))
                continue
            if obj.get("type") == "close":
                await ws.close(obj["code"], "asked")
                return
        await ws.send(msg)


def _auth(connection, request):
    if request.headers.get("Authorization") == "Bearer nope":
        return connection.respond(401, "bad key\n")
    return None


@pytest.fixture
async def echo():
    async with serve(_echo, "127.0.0.1", 0, process_request=_auth, ping_interval=None,
                     select_subprotocol=lambda conn, offered: "v1.test" if "v1.test" in offered else None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def proxy(echo):
    history = History()
    async with WsFaultProxy(echo, history=history) as p:
        p.test_history = history
        yield p


async def _finals(ws, n: int, timeout: float = 3.0) -> list[int]:
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            obj = json.loads(await ws.recv())
            out.append(obj["segment_id"])
    return out


async def test_passes_path_query_headers_and_subprotocol(proxy):
    async with connect(proxy.ws_url + "/v1/stream?session_id=s1&last_segment_id=3",
                       additional_headers={"Authorization": "Bearer k"}, subprotocols=["v1.test"]) as ws:
        await ws.send(json.dumps({"type": "whoami"}))
        info = json.loads(await ws.recv())
        assert info == {"type": "whoami", "path": "/v1/stream?session_id=s1&last_segment_id=3",
                        "auth": "Bearer k", "subprotocol": "v1.test"}
        assert ws.subprotocol == "v1.test"
        await ws.send(b"\x01\x02")
        assert await ws.recv() == b"\x01\x02"


async def test_refused_handshake_is_relayed_with_its_status(proxy):
    with pytest.raises(InvalidStatus) as exc:
        async with connect(proxy.ws_url + "/x", additional_headers={"Authorization": "Bearer nope"}):
            pass
    assert exc.value.response.status_code == 401
    assert b"bad key" in exc.value.response.body


async def test_upstream_close_code_is_relayed(proxy):
    async with connect(proxy.ws_url) as ws:
        await ws.send(json.dumps({"type": "close", "code": 4409}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 4409 and ws.close_reason == "asked"


async def test_drop_second_final_records_window(proxy):
    proxy.add(Drop(DOWNSTREAM, Match(kind="final", nth=2)))
    async with connect(proxy.ws_url) as ws:
        await ws.send(json.dumps({"type": "burst", "n": 4}))
        assert await _finals(ws, 3) == [0, 2, 3]
    [window] = proxy.test_history.faults
    assert window.kind == "ws_drop" and window.end_ns is not None
    assert window.params["match"]["nth"] == 2 and window.params["fired"] == 1


async def test_duplicate_upstream_binary_frame(proxy):
    proxy.add(Duplicate(UPSTREAM, Match(kind="binary", nth=2), copies=2))
    async with connect(proxy.ws_url) as ws:
        for i in range(3):
            await ws.send(bytes([i]))
        got = [await asyncio.wait_for(ws.recv(), 3) for _ in range(5)]
    assert got == [b"\x00", b"\x01", b"\x01", b"\x01", b"\x02"]
    assert proxy.count(UPSTREAM, "binary") == 3


async def test_delay_keeps_order(proxy):
    proxy.add(Delay(DOWNSTREAM, Match(kind="final", nth=1), delay_s=0.3))
    async with connect(proxy.ws_url) as ws:
        await ws.send(json.dumps({"type": "burst", "n": 3}))
        assert await _finals(ws, 3) == [0, 1, 2]
    [window] = proxy.test_history.faults
    assert (window.end_ns - window.start_ns) / 1e6 >= 250  # the window spans the held message


async def test_reorder_swaps_with_next(proxy):
    proxy.add(Reorder(DOWNSTREAM, Match(kind="final", nth=2), after=1))
    async with connect(proxy.ws_url) as ws:
        await ws.send(json.dumps({"type": "burst", "n": 4}))
        assert await _finals(ws, 4) == [0, 2, 1, 3]
    assert proxy.test_history.faults[0].end_ns is not None


async def test_hold_back_releases_in_order(proxy):
    rule = proxy.add(HoldBack(DOWNSTREAM, Match(kind="final", where={"segment_id": 1}, count=None), duration_s=0.2))
    async with connect(proxy.ws_url) as ws:
        await ws.send(json.dumps({"type": "burst", "n": 3}))
        assert await _finals(ws, 3) == [0, 2, 1]
    assert not rule.pending() and rule.windows[0].params["released"] is True


async def test_close_with_code_mid_stream(proxy):
    proxy.add(CloseWith(1011, "injected", DOWNSTREAM, Match(kind="final", nth=2)))
    async with connect(proxy.ws_url) as ws:
        await ws.send(json.dumps({"type": "burst", "n": 5}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 3))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 3)
    assert first["segment_id"] == 0
    assert ws.close_code == 1011 and ws.close_reason == "injected"
    # the next connection is relayed normally
    async with connect(proxy.ws_url) as ws2:
        await ws2.send("hi")
        assert await asyncio.wait_for(ws2.recv(), 3) == "hi"


async def test_rule_context_manager_ends_window(proxy):
    async with proxy.rule(HoldBack(DOWNSTREAM, duration_s=30)) as rule:
        async with connect(proxy.ws_url) as ws:
            await ws.send("x")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.2)
    assert rule not in proxy.rules and rule.windows[0].end_ns is not None


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="direction"):
        Drop("sideways")
    with pytest.raises(ValueError, match="1-based"):
        Match(nth=0)
    with pytest.raises(ValueError, match="1006"):
        CloseWith(1006)
    with pytest.raises(ValueError, match="loopback"):
        WsFaultProxy("ws://192.0.2.1:80")


async def test_stop_answering_pings_lets_server_drop_client():
    """A server that pings every 0.1 s and gives up after 0.3 s closes the silent client."""
    async with serve(_echo, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=0.3) as server:
        history = History()
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with WsFaultProxy(url, history=history) as proxy:
            async with connect(proxy.ws_url) as ws:
                await ws.send("alive")
                assert await ws.recv() == "alive"
                rule = proxy.add(StopAnsweringPings())
                await ws.send("ignored")  # silenced: never reaches the server
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1011  # websockets' "keepalive ping timeout"
            assert proxy.pongs_withheld >= 1 and rule.fired == 1
            [window] = history.faults
            assert window.kind == "ws_no_pong" and window.end_ns is not None
            assert window.params["server_close_code"] == 1011


class _Broken(Drop):
    def act(self, msg, pipe):
        raise ValueError("rule bug")


async def test_a_broken_rule_is_recorded_and_closes_1011(proxy):
    proxy.add(_Broken(UPSTREAM, Match(kind="text")))
    async with connect(proxy.ws_url) as ws:
        await ws.send("x")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
    assert ws.close_code == 1011
    assert proxy.errors and "rule bug" in proxy.errors[0]
