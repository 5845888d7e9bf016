"""What vendors do, as fault-proxy rules, against the reference server's Deepgram stream
(``/v1/listen``): each rule that fires is a FaultWindow in the proxy's record of that connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import httpx
import pytest
import websockets

from harness.faults import vendors
from harness.faults.schedule import Schedule
from harness.faults.wsproxy import METRICS_PATH, RECORD_PATH, WsFaultProxy
from harness.services import ReferenceServer

SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
CHUNK = 3200  # 100 ms


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="scripted") as srv:
        yield srv


def _url(base: str, **query: str) -> str:
    params = {"encoding": "linear16", "sample_rate": "16000", "channels": "1", "model": "scripted",
              "script": SCRIPT, **query}
    return f"{base}/v1/listen?{urlencode(params)}"


async def stream(base: str, key: str, audio_ms: int = 3000, **query: str) -> tuple[list[dict], int | None, str]:
    """Send ``audio_ms`` of silence at full speed, then CloseStream; every message and the close."""
    out: list[dict] = []
    async with websockets.connect(_url(base, **query), additional_headers={"Authorization": f"Token {key}"},
                                  open_timeout=10, close_timeout=5) as ws:
        async def reader() -> None:
            async for raw in ws:
                out.append(json.loads(raw))

        reading = asyncio.create_task(reader())
        try:
            for _ in range(audio_ms // 100):
                await ws.send(b"\x00" * CHUNK)
            await ws.send(json.dumps({"type": "CloseStream"}))
        except websockets.ConnectionClosed:
            pass
        try:
            await asyncio.wait_for(reading, 20)
        except websockets.ConnectionClosed:
            pass
    return out, ws.close_code, ws.close_reason or ""


def finals(messages: list[dict]) -> list[str]:
    return [m["channel"]["alternatives"][0]["transcript"] for m in messages if vendors.is_final(m)]


@pytest.fixture
async def proxy_for(server) -> AsyncIterator:
    proxies: list[WsFaultProxy] = []

    async def make(toml: str) -> WsFaultProxy:
        proxy = await WsFaultProxy(server.ws_url, schedule=Schedule.from_toml(toml, "test.toml")).start()
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        await p.close()


async def test_every_second_connection_closed_net_0000_after_2_s_of_audio(server, proxy_for):
    proxy = await proxy_for("""
[[fault]]
type = "vendor_error"
preset = "deepgram-net-0000"
at = { audio_ms = 2000 }
target = { every = 2 }
""")
    direct, code, _ = await stream(server.ws_url, server.api_key)
    assert code == 1000 and finals(direct)
    for i in range(1, 5):
        messages, code, reason = await stream(proxy.ws_url, server.api_key)
        rec = proxy.fault_record.get(i)
        assert rec is not None and rec.handshake_status == 101
        if i % 2:
            assert code == 1000 and finals(messages) == finals(direct), i
            assert rec.faults == []
        else:
            assert code == 1011 and reason.startswith("NET-0000"), (i, code, reason)
            assert finals(messages) != finals(direct)
            (w,) = rec.faults
            assert w.kind == "vendor_error" and w.params["code"] == 1011 and w.end_ns >= w.start_ns
            assert rec.audio_bytes >= 64_000 and rec.close_code == 1011
            assert rec.frames.get("upstream_dropped", 0) >= 1  # the rest of the audio never reached the server
    assert proxy.fault_record.total == 4


@pytest.mark.parametrize("preset", sorted(vendors.ERROR_PRESETS))
async def test_error_presets_send_the_vendors_message_and_close(server, proxy_for, preset):
    proxy = await proxy_for(f'[[fault]]\ntype = "vendor_error"\npreset = "{preset}"\nat = {{ result = 1 }}\n')
    messages, code, reason = await stream(proxy.ws_url, server.api_key)
    p = vendors.ERROR_PRESETS[preset]
    assert (code, reason) == (p.code, p.reason)
    assert len([m for m in messages if vendors.is_result(m)]) == 1
    if p.message is not None:
        assert messages[-1] == p.message
    else:
        assert vendors.is_result(messages[-1])
    (w,) = proxy.fault_record.get(1).faults
    assert w.kind == "vendor_error" and w.params["frames"] == len(p.frames())


@pytest.mark.parametrize("preset", ["deepgram-401", "deepgram-429", "deepgram-503", "openai-429"])
async def test_refused_handshakes_carry_the_vendors_status_body_and_retry_after(server, proxy_for, preset):
    proxy = await proxy_for(f'[[fault]]\ntype = "refuse_handshake"\npreset = "{preset}"\ntarget = {{ nth = 1 }}\n')
    p = vendors.REFUSAL_PRESETS[preset]
    with pytest.raises(websockets.InvalidStatus) as err:
        await stream(proxy.ws_url, server.api_key)
    r = err.value.response
    assert r.status_code == p.status and json.loads(r.body) == p.body
    assert r.headers.get("Retry-After") == p.headers.get("Retry-After")
    rec = proxy.fault_record.get(1)
    assert rec.handshake_status == p.status and [w.kind for w in rec.faults] == ["refuse_handshake"]
    _, code, _ = await stream(proxy.ws_url, server.api_key)  # the second connection is not targeted
    assert code == 1000 and proxy.fault_record.get(2).handshake_status == 101


async def test_stall_keeps_the_socket_and_stops_the_results(server, proxy_for):
    proxy = await proxy_for('[[fault]]\ntype = "stall"\nat = { result = 1 }\n')
    messages, code, _ = await stream(proxy.ws_url, server.api_key)
    assert len(messages) == 1 and vendors.is_result(messages[0])  # no more results, no Metadata
    assert code == 1000  # the socket stayed open until the server closed it
    rec = proxy.fault_record.get(1)
    assert rec.frames["downstream_dropped"] >= 2 and [w.kind for w in rec.faults] == ["stall"]


async def test_drop_and_duplicate_the_nth_final(server, proxy_for):
    direct, _, _ = await stream(server.ws_url, server.api_key, audio_ms=6000)
    want = finals(direct)
    assert len(want) >= 3
    proxy = await proxy_for('[[fault]]\ntype = "drop_final"\nnth = 2\n\n[[fault]]\ntype = "duplicate_final"\nnth = 3\n')
    got = finals((await stream(proxy.ws_url, server.api_key, audio_ms=6000))[0])
    assert got == [want[0], want[2], want[2], *want[3:]]
    assert sorted(w.kind for w in proxy.fault_record.get(1).faults) == ["drop_final", "duplicate_final"]


async def test_accept_then_close_for_the_first_two_connections(server, proxy_for):
    proxy = await proxy_for('[[fault]]\ntype = "accept_close"\ncode = 1011\nreason = "try again"\ntarget = { first = 2 }\n')
    for i in (1, 2):
        messages, code, reason = await stream(proxy.ws_url, server.api_key)
        assert (messages, code, reason) == ([], 1011, "try again"), i
    messages, code, _ = await stream(proxy.ws_url, server.api_key)
    assert code == 1000 and finals(messages)


async def test_cut_drops_the_tcp_connection_without_a_close_frame(server, proxy_for):
    proxy = await proxy_for('[[fault]]\ntype = "cut"\nat = { audio_ms = 1000 }\n')
    messages, code, _ = await stream(proxy.ws_url, server.api_key)
    assert code == 1006
    rec = proxy.fault_record.get(1)
    assert [w.kind for w in rec.faults] == ["cut"] and rec.close_code == 1006


async def test_the_record_is_served_as_json_and_filtered_by_tag(server, proxy_for):
    proxy = await proxy_for('[[fault]]\ntype = "accept_close"\ntarget = { tag = "flaky" }\n')
    _, code_a, _ = await stream(proxy.ws_url, server.api_key, tag="flaky")
    _, code_b, _ = await stream(proxy.ws_url, server.api_key, tag="steady")
    assert (code_a, code_b) == (1011, 1000)
    async with httpx.AsyncClient(trust_env=False) as http:
        everything = (await http.get(f"http://127.0.0.1:{proxy.port}{RECORD_PATH}")).json()
        flaky = (await http.get(f"http://127.0.0.1:{proxy.port}{RECORD_PATH}", params={"tag": "flaky"})).json()
    assert everything["connections_total"] == 2 and len(everything["connections"]) == 2
    (row,) = flaky["connections"]
    assert row["tags"] == ["flaky"] and row["faults"][0]["kind"] == "accept_close" and row["close_code"] == 1011
    async with httpx.AsyncClient(trust_env=False) as http:
        metrics = (await http.get(f"http://127.0.0.1:{proxy.port}{METRICS_PATH}")).text
    assert 'fault_proxy_connections_total{protocol="deepgram"} 2.0' in metrics
    assert 'fault_proxy_faults_fired_total{fault="accept_close",protocol="deepgram"} 1.0' in metrics


def test_a_schedule_the_proxy_cannot_run_is_refused_before_it_listens():
    with pytest.raises(ValueError, match="only wsproxy-layer faults"):
        WsFaultProxy("ws://127.0.0.1:9", schedule=Schedule.from_data([{"type": "latency"}]))
    with pytest.raises(ValueError, match="trigger must be 'connect'"):
        WsFaultProxy("ws://127.0.0.1:9", schedule=Schedule.from_data(
            [{"type": "refuse_handshake", "status": 503, "at": {"result": 1}}]))


async def test_the_proxy_record_merges_into_the_servers_vendor_leg(server, proxy_for):
    """One vendor-leg history per connection: the server's (audio, controls) with the proxy's
    fault; the refused handshake, which the server never saw, kept as the proxy saw it."""
    from harness.vendorleg import VendorLeg

    proxy = await proxy_for('[[fault]]\ntype = "refuse_handshake"\npreset = "deepgram-429"\ntarget = { nth = 1 }\n\n'
                            '[[fault]]\ntype = "vendor_error"\npreset = "deepgram-net-0000"\nat = { audio_ms = 1000 }\n'
                            'target = { nth = 2 }\n')
    with pytest.raises(websockets.InvalidStatus):
        await stream(proxy.ws_url, server.api_key, tag="merge-test")
    _, code, _ = await stream(proxy.ws_url, server.api_key, tag="merge-test")
    assert code == 1011
    async with httpx.AsyncClient(trust_env=False) as http:
        body = (await http.get(f"{server.url}/debug/connections", params={"tag": "merge-test"},
                               headers=server.auth_headers(), timeout=10)).json()
    leg = proxy.fault_record.merged_into(VendorLeg.from_dict(body))
    refused, served = leg.connections
    assert refused.conn_id == "proxy-1" and refused.handshake_status == 429
    assert [w.kind for w in refused.faults] == ["refuse_handshake"]
    assert served.conn_id != "proxy-2" and served.audio.total_bytes >= 32_000  # the server's own record …
    assert [w.kind for w in served.faults] == ["vendor_error"]  # … with the fault the proxy fired
