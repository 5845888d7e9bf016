"""A client that vanishes without finalize (a closed laptop lid, a phone in a tunnel: it stops
answering, and no close comes) is let go once the server's own limits have passed.

The client stops reading its socket, so it answers neither pings nor anything else. The server's
idle timeout and heartbeat (``ready.idle_timeout_s``, ``2 x heartbeat_s``; a fixed bound for a
protocol whose stream does not say them) must close that connection: ``/health`` must count no
more connections than before the session. Where a dropped connection ends the session (a protocol
without resume), no more sessions either; where the session may wait for a resume, it must not
still be ``streaming``. A server that counts such sessions forever shows an ever-growing
``active_sessions`` and, at its limit, refuses new users.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conformance_kit import expect_ready, http, scripted_params, scripted_pcm, send_all, stream_target, wait_acked

from harness.checks import health
from harness.checks.health import Snapshot
from harness.drivers.asyncio_driver import create_session, open_stream
from harness.protocols import SessionParams, get_codec

WORDS = 4
DEFAULT_LIMIT_S = 20.0  # a stream that does not say its limits: Deepgram's own idle close is 10 s
MARGIN_S = 8.0  # the close handshake with a client that no longer reads, and a busy machine


async def _health(target) -> Snapshot:
    resp = await http(target, "GET", "/health")
    resp.raise_for_status()
    return Snapshot(t_ns=time.monotonic_ns(), body=resp.json())


@pytest.mark.needs("health")
async def test_vanished_client_is_let_go(scenario, target, protocol, capabilities):
    codec = get_codec(protocol)
    h = scenario.history(protocol=protocol, vanish="stops reading: no pong, no close, no finalize")
    scripted = "scripted_engine" in capabilities
    params = scripted_params() if scripted else SessionParams(engine="pocketsphinx")
    before = await _health(target)
    session = await create_session(codec, stream_target(target), params, history=h)
    stream = await open_stream(codec, stream_target(target), session, history=h)
    limit_s = DEFAULT_LIMIT_S
    try:
        if codec.sends_ready:
            ready = await expect_ready(stream)
            limits = [s for s in (ready.idle_timeout_s, 2 * ready.heartbeat_s if ready.heartbeat_s else None) if s]
            limit_s = min(limits) if limits else DEFAULT_LIMIT_S
        pcm = scripted_pcm(WORDS)
        await send_all(stream, pcm)
        if "offsets" in capabilities:
            await wait_acked(stream, len(pcm))
        stream.ws.transport.pause_reading()  # vanish: nothing read, so no pong and no close answered
        h.add("note", text=f"client vanished; the server's limit is {limit_s:g} s")
        vanished = time.monotonic()
        deadline = vanished + limit_s + MARGIN_S
        ends_on_drop = "offsets" not in capabilities
        sid = h.session_id or getattr(codec, "learned_session_id", None)
        while True:  # bounded poll: until the server has let the client go, or the limit has passed
            after = await _health(target)
            state = None
            if not ends_on_drop and sid and "session_lookup" in capabilities:
                state = (await http(target, "GET", f"/v1/sessions/{sid}")).json().get("state")
            waited = time.monotonic() - vanished
            verdict = health.vanished_client(before, after, ends_on_drop=ends_on_drop, session_state=state,
                                             waited_s=waited)
            if verdict.passed or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        scenario.check(verdict)
    finally:
        stream.ws.transport.abort()
        if sid := (h.session_id or getattr(codec, "learned_session_id", None)):
            if "delete" in capabilities:
                await http(target, "DELETE", f"/v1/sessions/{sid}")
    scenario.verify()
