"""Toxiproxy faults through a real toxiproxy-server: toxics added and removed, windows recorded,
rollback with /reset also when the test body fails, every call bounded by a timeout."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from harness.faults import toxiproxy as tp
from harness.services import free_port
from harness.history import History

pytestmark = pytest.mark.toxiproxy


async def _roundtrip(listen: str, payload: bytes = b"ping") -> tuple[bytes, float]:
    host, port = listen.rsplit(":", 1)
    t0 = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 3)
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()
    return data, time.monotonic() - t0


def _proxies(url: str) -> dict:
    return httpx.get(f"{url}/proxies", timeout=3).json()


async def test_toxic_added_then_removed_with_window(toxiproxy_url, tcp_echo):
    history = History()
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        proxy = await lab.proxy(tcp_echo)
        assert tp.PORT_RANGE.start <= proxy.port < tp.PORT_RANGE.stop
        assert (await _roundtrip(proxy.listen))[0] == b"ping"
        async with proxy.toxic(tp.latency(150, 10), history) as window:
            assert set(await proxy.active_toxics()) == {"latency_downstream"}
            data, elapsed = await _roundtrip(proxy.listen)
            assert data == b"ping" and elapsed >= 0.13  # a lower bound: the toxic is in the path
        assert await proxy.active_toxics() == {}
    assert window.kind == "latency" and window.end_ns is not None and window.end_ns > window.start_ns
    assert window.params == {"toxic": "latency", "stream": "downstream", "toxicity": 1.0, "latency": 150, "jitter": 10}
    assert history.faults == [window]


async def test_reset_runs_when_the_body_fails(toxiproxy_url, tcp_echo):
    with pytest.raises(RuntimeError, match="boom"):
        async with tp.ToxiproxyLab(toxiproxy_url) as lab:
            proxy = await lab.proxy(tcp_echo)
            await proxy.client.add_toxic(proxy.proxy, tp.timeout(0))  # left behind on purpose
            await proxy.client.set_enabled(proxy.proxy, False)
            name = proxy.name
            raise RuntimeError("boom")
    assert name not in _proxies(toxiproxy_url)  # rolled back and deleted


async def test_reset_restores_a_proxy_left_broken(toxiproxy_url, tcp_echo):
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        proxy = await lab.proxy(tcp_echo)
        await proxy.client.add_toxic(proxy.proxy, tp.limit_data(1))
        await proxy.client.set_enabled(proxy.proxy, False)
        await lab.client.reset()
        state = _proxies(toxiproxy_url)[proxy.name]
        assert state["enabled"] is True and state["toxics"] == []
        assert (await _roundtrip(proxy.listen))[0] == b"ping"


async def test_down_refuses_then_restores_on_same_port(toxiproxy_url, tcp_echo):
    history = History()
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        proxy = await lab.proxy(tcp_echo)
        async with proxy.down(history):
            with pytest.raises(OSError):
                await _roundtrip(proxy.listen)
        assert (await _roundtrip(proxy.listen))[0] == b"ping"
    assert history.faults[0].kind == "down" and history.faults[0].end_ns is not None


async def test_update_toxic_changes_attributes(toxiproxy_url, tcp_echo):
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        proxy = await lab.proxy(tcp_echo)
        toxic = tp.latency(10)
        async with proxy.toxic(toxic):
            answer = await proxy.update(toxic, latency=40, jitter=5)
            assert answer["attributes"] == {"latency": 40, "jitter": 5}
            assert (await proxy.active_toxics())["latency_downstream"]["attributes"]["latency"] == 40
            with pytest.raises(ValueError, match="no attribute 'rate'"):
                await proxy.update(toxic, rate=1)


async def test_limit_data_closes_connection(toxiproxy_url, tcp_echo):
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        proxy = await lab.proxy(tcp_echo)
        async with proxy.toxic(tp.limit_data(4)):
            host, port = proxy.listen.split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"0123456789")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(100), 5)
            rest = await asyncio.wait_for(reader.read(100), 5)
            writer.close()
        assert data == b"0123" and rest == b""


def test_toxics_are_validated_before_sending():
    with pytest.raises(ValueError, match="unknown toxic type 'lag'"):
        tp.Toxic("lag")
    with pytest.raises(ValueError, match="has no attribute 'latencyx'"):
        tp.Toxic("latency", attributes={"latencyx": 1})
    with pytest.raises(ValueError, match="'upstream'"):
        tp.latency(10, stream="sideways")
    with pytest.raises(ValueError, match=">= 0"):
        tp.bandwidth(-1)
    assert tp.slicer(64, 8, 100, stream=tp.UPSTREAM).key == "slicer_upstream"


async def test_every_call_times_out_on_a_silent_server():
    """A listener that accepts TCP but never answers HTTP (what a frozen Toxiproxy looks like)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = tp.ToxiproxyClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.3)
        with pytest.raises(tp.ToxiproxyError, match="POST /reset"):
            await client.reset()


async def test_unreachable_server_is_named():
    client = tp.ToxiproxyClient("http://127.0.0.1:9", timeout_s=1)
    with pytest.raises(tp.ToxiproxyError, match="127.0.0.1:9"):
        await client.version()


def test_port_pool_hands_out_distinct_ports():
    # Ports free right now, outside the chaos suite's range: a chaos run beside this test (or a
    # proxy another process left behind) must not be able to take the pool's ports first.
    free = sorted({free_port() for _ in range(3)})
    while len(free) < 3:
        free = sorted(set(free) | {free_port()})
    pool = tp.PortPool(free)
    ports = {pool.acquire() for _ in range(3)}
    assert ports == set(free)
    with pytest.raises(tp.ToxiproxyError, match="no free listen port"):
        pool.acquire()
    pool.release(free[1])
    assert pool.acquire() == free[1]


async def test_several_toxics_make_one_window_and_all_go(toxiproxy_url, tcp_echo):
    """A black hole both ways: two toxics, one fault window, both removed at the end."""
    history = History()
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        proxy = await lab.proxy(f"http://{tcp_echo}")
        async with proxy.toxic([tp.timeout(0, tp.DOWNSTREAM), tp.timeout(0, tp.UPSTREAM)], history) as window:
            assert set(await proxy.active_toxics()) == {"timeout_downstream", "timeout_upstream"}
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_roundtrip(proxy.listen), 0.5)
        assert await proxy.active_toxics() == {}
        assert (await _roundtrip(proxy.listen))[0] == b"ping"
    assert history.faults == [window]
    assert window.params["stream"] == "downstream+upstream" and len(window.params["toxics"]) == 2


async def test_a_toxic_that_cannot_be_added_leaves_nothing(toxiproxy_url, tcp_echo):
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        proxy = await lab.proxy(tcp_echo)
        with pytest.raises(ValueError, match="must differ"):
            async with proxy.toxic([tp.latency(1), tp.latency(2)]):
                pass
        await proxy.client.add_toxic(proxy.proxy, tp.latency(5))
        with pytest.raises(tp.ToxiproxyError, match="already exists"):  # a name clash on the server
            async with proxy.toxic([tp.slicer(10), tp.latency(1)]):
                pass
        assert set(await proxy.active_toxics()) == {"latency_downstream"}  # the slicer was taken back


def test_bad_upstreams_are_named():
    for bad in ("127.0.0.1", "http://127.0.0.1", ":80"):
        with pytest.raises(ValueError, match="upstream"):
            tp._host_port(bad)


async def test_remote_upstream_or_api_is_refused(toxiproxy_url):
    with pytest.raises(ValueError, match="loopback"):
        tp.ToxiproxyLab("http://192.0.2.10:8474")
    async with tp.ToxiproxyLab(toxiproxy_url) as lab:
        with pytest.raises(ValueError, match="'192.0.2.10' is not a loopback"):
            await lab.proxy("192.0.2.10:8700")
