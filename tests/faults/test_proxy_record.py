"""The fault proxy's record: merged into the vendor-leg type, and bounded on an hour-long stream."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from harness.faults.proxy_record import ConnectionRecord, ProxyRecord
from harness.faults.schedule import Schedule
from harness.faults.wsproxy import WsFaultProxy
from harness.history import FaultWindow
from harness.vendorleg import VendorConnection, VendorLeg

MS = 1_000_000


def _proxy_record() -> ProxyRecord:
    rec = ProxyRecord()
    a = rec.open("/v1/listen", ["call-1"])  # reached the server, then a fault closed it
    a.opened_ns, a.accepted_ns, a.handshake_status = 100 * MS, 130 * MS, 101
    a.faults.append(FaultWindow("vendor_error", {"code": 1011}, 2100 * MS, 2100 * MS, "wsproxy:1"))
    a.closed(1011, "NET-0000: …", 1001)
    b = rec.open("/v1/listen", ["call-1"])  # refused at the handshake: the server never saw it
    b.opened_ns, b.handshake_status = 3000 * MS, 429
    b.faults.append(FaultWindow("refuse_handshake", {"status": 429}, 3000 * MS, 3000 * MS, "wsproxy:1"))
    return rec


def _server_leg(opened_ms: int) -> VendorLeg:
    return VendorLeg([VendorConnection("c1", "deepgram", "/v1/listen", tag="call-1", opened_ns=opened_ms * MS,
                                       closed_ns=2200 * MS, close_code=1001, controls=[(500 * MS, "KeepAlive")])])


def test_the_proxy_record_merges_into_one_vendor_leg_per_connection():
    leg = _proxy_record().merged_into(_server_leg(opened_ms=120))
    first, refused = leg.connections
    assert first.conn_id == "c1" and first.controls == [(500 * MS, "KeepAlive")]  # the server's record …
    assert [w.kind for w in first.faults] == ["vendor_error"] and first.closed_by == "proxy"  # … and the fault
    assert refused.conn_id == "proxy-2" and refused.handshake_status == 429 and not refused.accepted
    assert [w.kind for w in refused.faults] == ["refuse_handshake"]
    assert VendorLeg.from_json(leg.to_json()).to_dict() == leg.to_dict()


def test_a_server_connection_opened_outside_the_handshake_is_not_merged():
    leg = _proxy_record().merged_into(_server_leg(opened_ms=140))  # after the upstream answered: another one
    assert [c.conn_id for c in leg.connections] == ["proxy-1", "c1", "proxy-2"]
    assert next(c for c in leg.connections if c.conn_id == "c1").faults == []


async def _sink(ws) -> None:
    async for msg in ws:
        if isinstance(msg, bytes) and len(msg) == 1:  # every 10 min of audio: one Results final back
            await ws.send(json.dumps({"type": "Results", "is_final": True, "channel": {"alternatives": [{}]}}))


async def test_an_hour_long_stream_does_not_grow_the_record():
    """One hour of 200 ms frames (18,000, 115 MB) through the proxy as fast as it goes: the record
    is counters, so it does not grow with the stream (only with the faults fired), and neither does
    the heap (16 bytes kept per frame would show as 288 kB)."""
    frame = b"\x00" * 6400
    async with serve(_sink, "127.0.0.1", 0, max_size=None) as upstream:
        url = f"ws://127.0.0.1:{upstream.sockets[0].getsockname()[1]}"
        sched = Schedule.from_data([{"type": "duplicate_final", "nth": 1}, {"type": "stall", "at": {"result": 5}}])
        async with WsFaultProxy(url, schedule=sched) as proxy:
            async with connect(proxy.ws_url + "/v1/listen", max_size=None) as ws:
                sizes = []
                tracemalloc.start()
                try:
                    for minute in range(60):
                        for _ in range(300):
                            await ws.send(frame)
                        if minute % 10 == 9:
                            await ws.send(b"\x01")
                        await asyncio.wait_for(await ws.ping(), 30)  # the proxy has read everything sent so far
                        rec = proxy.fault_record.get(1)
                        sizes.append((len(rec.faults), len(json.dumps(rec.to_dict()))))
                        if minute == 1:
                            heap_after_1_min = tracemalloc.get_traced_memory()[0]
                    for _ in range(500):  # the last final is on its way back from the upstream
                        if rec.finals == 6:
                            break
                        await asyncio.sleep(0.01)
                    heap_after_60_min = tracemalloc.get_traced_memory()[0]
                finally:
                    tracemalloc.stop()
    assert rec.audio_bytes == 3600 * 32_000 + 6 and rec.frames["upstream_received"] == 18_006
    assert rec.finals == 6 and [w.kind for w in rec.faults] == ["duplicate_final", "stall"]
    for n_faults in (1, 2):  # with the same faults, only the counters change (their digits, a new key)
        same = [size for n, size in sizes if n == n_faults]
        assert len(same) >= 5 and max(same) - min(same) < 64, sizes
    assert heap_after_60_min - heap_after_1_min < 256 * 1024, (heap_after_1_min, heap_after_60_min)


def test_the_proxy_keeps_its_last_connections_and_counts_the_rest():
    rec = ProxyRecord(max_connections=3)
    for i in range(10):
        c = rec.open("/v1/listen" if i % 2 else "/v3/ws", [])
        c.audio_bytes = 100
        c.start_fault("stall")
    assert rec.total == 10 and [r.index for r in rec.connections] == [8, 9, 10]
    metrics = rec.metrics()  # the totals outlive the records let go
    assert metrics[("connections", "deepgram")] == 5 and metrics[("connections", "assemblyai")] == 5
    assert metrics[("audio_bytes", "deepgram")] == 500 and metrics[("faults", "assemblyai", "stall")] == 5
    assert b'fault_proxy_faults_fired_total{fault="stall",protocol="deepgram"} 5.0' in rec.prometheus()
    one = ConnectionRecord(index=1)
    for _ in range(1000):
        one.start_fault("stall")
    assert len(one.faults) == 256 and one.faults_dropped == 744


def test_the_audio_rate_comes_from_the_handshake_or_the_set_up_message():
    from harness.faults.vendors import bytes_per_ms_of_query

    assert bytes_per_ms_of_query("/v1/listen", {}) == 32
    assert bytes_per_ms_of_query("/v1/listen", {"sample_rate": "8000", "encoding": "mulaw"}) == 8
    assert bytes_per_ms_of_query("/v3/ws", {"sample_rate": "48000"}) == 96
    assert bytes_per_ms_of_query("/v1/realtime", {}) == 48  # OpenAI's 24 kHz pcm16
    speechmatics = ConnectionRecord(index=1)
    speechmatics.received("upstream", "{}", {"message": "StartRecognition", "audio_format": {
        "type": "raw", "encoding": "pcm_f32le", "sample_rate": 44100}})
    assert speechmatics.bytes_per_ms == 176
    openai = ConnectionRecord(index=2, bytes_per_ms=48)
    openai.received("upstream", "{}", {"type": "session.update", "session": {"audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 16000}}}}})
    assert openai.bytes_per_ms == 32
    openai.received("upstream", "{}", {"type": "session.update", "session": {"instructions": "x"}})
    assert openai.bytes_per_ms == 32  # a later update that does not name the format changes nothing
