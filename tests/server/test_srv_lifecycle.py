"""Finalize exactly once under concurrency, kill -9 and resume, SIGTERM, heartbeats and idle timeout."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest

from srv_client import PIPELINE_ORDER, WORD_BYTES, Api, expected_words, frame, silence


async def test_concurrent_http_and_stream_finalizes_run_the_pipeline_once(api: Api) -> None:
    s = await api.create()
    streams = []
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_audio(silence(7 * WORD_BYTES))
    await st.acked(7 * WORD_BYTES)
    streams.append(st)

    async def stream_finalize() -> None:
        await st.send_json({"type": "finalize"})

    calls = [api.finalize(s["session_id"]) for _ in range(24)]
    results = await asyncio.gather(stream_finalize(), *calls)
    assert all(r.status_code == 202 for r in results[1:])
    await st.drain_until_closed()
    body = await api.wait_state(s["session_id"])
    assert body["events"] == PIPELINE_ORDER
    assert st.event_names() == PIPELINE_ORDER
    assert body["transcript"].split() == expected_words(7)
    tx = next(t for t in (await api.http.get("/debug/transactions")).json()["transactions"]
              if t["session_id"] == s["session_id"])
    assert [e["stage"] for e in tx["events"]].count("finalize_requested") == 1


async def test_concurrent_finalizes_of_a_zero_audio_session(api: Api) -> None:
    s = await api.create()
    results = await asyncio.gather(*(api.finalize(s["session_id"]) for _ in range(30)))
    assert {r.status_code for r in results} == {202}
    body = await api.wait_state(s["session_id"])
    assert body["events"] == PIPELINE_ORDER and body["state"] == "completed"


async def test_kill_9_and_resume_gives_the_same_transcript(start_ref_server) -> None:
    srv = start_ref_server()
    api = Api(srv.url, srv.api_key)
    try:
        s = await api.create()
        total = 23 * WORD_BYTES + 2000
        pcm = silence(total)
        st = await api.stream(s["session_id"], s["token"])
        await st.recv()
        sent = await st.send_audio(pcm[:13 * WORD_BYTES + 1234 * 2])
        await st.recv_until(lambda m: any(a["received_offset"] == sent for a in st.of_type("ack"))
                            and any(f["segment_id"] == 1 for f in st.of_type("final")))
        srv.kill()  # SIGKILL: nothing is flushed, no close frame
        await st.drain_until_closed(timeout=5)
        srv.start()
        durable = (await api.get(s["session_id"]))["durable_offset"]
        assert durable == 10 * WORD_BYTES  # two finals of five words were persisted before they were sent
        assert (await api.get(s["session_id"]))["state"] == "interrupted"
        again = await api.stream(s["session_id"], s["token"], last_segment_id=1)
        ready = await again.recv()
        assert ready["committed_offset"] == durable
        await again.send_audio(pcm[durable:], start=durable)
        await again.send_json({"type": "finalize"})
        assert (await again.drain_until_closed()).code == 1000
        finals = {m["segment_id"]: m for m in st.of_type("final") + again.of_type("final")}
        assert sorted(finals) == list(range(len(finals)))  # no holes, segment ids continued
        words = [w for k in sorted(finals) for w in finals[k]["text"].split()]
        assert words == expected_words(23)
        body = await api.get(s["session_id"])
        assert body["transcript"].split() == expected_words(23)
        assert body["events"] == PIPELINE_ORDER
    finally:
        await api.aclose()


async def test_kill_9_during_the_pipeline_resumes_it_without_repeating_events(start_ref_server) -> None:
    srv = start_ref_server(test_hooks=True)
    api = Api(srv.url, srv.api_key)
    try:
        s = await api.create(metadata={"hold_step": "tasks"})
        await api.finalize(s["session_id"])
        async with asyncio.timeout(10):
            while "tasks_started" not in (await api.get(s["session_id"]))["events"]:
                await asyncio.sleep(0.05)
        srv.kill()
        srv.start()
        await api.http.post(f"/debug/release/{s['session_id']}")
        body = await api.wait_state(s["session_id"])
        assert body["events"] == PIPELINE_ORDER
    finally:
        await api.aclose()


async def test_sigterm_closes_streams_1001_and_exits_0(start_ref_server) -> None:
    srv = start_ref_server()
    api = Api(srv.url, srv.api_key)
    try:
        s = await api.create()
        st = await api.stream(s["session_id"])
        await st.recv()
        await st.send_audio(silence(7 * WORD_BYTES))
        await st.recv_until(lambda m: m["type"] == "final")
        stop = asyncio.get_running_loop().run_in_executor(None, srv.stop)
        closed = await st.drain_until_closed()
        assert closed.code == 1001
        assert await stop == 0
        srv.start()
        body = await api.get(s["session_id"])
        assert body["state"] == "interrupted" and body["durable_offset"] == 5 * WORD_BYTES
        again = await api.stream(s["session_id"])
        assert (await again.recv())["committed_offset"] == 5 * WORD_BYTES
        await again.close()
    finally:
        await api.aclose()


def _raw_ws_client(url_host: str, port: int, path: str, key: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never answers anything (a frozen peer)."""
    sock = socket.create_connection((url_host, port), timeout=10)
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {url_host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {key}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_until_eof(sock: socket.socket, limit_s: float) -> bytes:
    data = b""
    deadline = time.monotonic() + limit_s
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("defect", [None, "no-heartbeat"])
async def test_a_peer_that_never_answers_pings_is_dropped(start_ref_server, defect: str | None) -> None:
    srv = start_ref_server(defects=(defect,) if defect else (),
                           extra_args=("--heartbeat-s", "0.5", "--idle-timeout-s", "30"))
    api = Api(srv.url, srv.api_key)
    try:
        s = await api.create()
        sock = _raw_ws_client(srv.host, srv.port, f"/v1/stream?session_id={s['session_id']}", srv.api_key)
        try:
            data = await asyncio.to_thread(_read_until_eof, sock, 3.0)
            if defect is None:
                assert b"\x89" in data  # the server pinged (opcode 0x9) ...
                await api.wait_state(s["session_id"], ("interrupted",), timeout=5)  # ... and dropped the peer
            else:
                assert b"\x89" not in data  # no pings at all, and the dead peer's session stays streaming
                assert (await api.get(s["session_id"]))["state"] == "streaming"
        finally:
            sock.close()
    finally:
        await api.aclose()


async def test_idle_timeout_closes_4408_and_keepalive_prevents_it(start_ref_server) -> None:
    srv = start_ref_server(extra_args=("--idle-timeout-s", "1"))
    api = Api(srv.url, srv.api_key)
    try:
        s = await api.create()
        kept = await api.stream(s["session_id"])
        await kept.recv()
        for _ in range(6):  # 1.8 s of keepalives, longer than the idle timeout
            await kept.send_json({"type": "keepalive"})
            await asyncio.sleep(0.3)
        await kept.ws.send(frame(0, silence(100)))
        assert (await kept.recv_until(lambda m: m["type"] == "ack"))["received_offset"] == 100
        closed = await kept.drain_until_closed(timeout=10)
        assert closed.code == 4408
        assert (await api.get(s["session_id"]))["state"] == "interrupted"
    finally:
        await api.aclose()


def test_unknown_defect_exits_2_naming_it() -> None:
    r = subprocess.run([sys.executable, "-m", "reference_server", "--port", "0", "--defect", "gremlins"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "gremlins" in r.stderr and "health-lies" in r.stderr and "console-error" in r.stderr
