"""/health and /v1/stats tell the truth: integers (never "N/A"), connection counts that go up
while N streams are open and come back down after they close.

Catches ``health-lies``: a dashboard that counts connections in but never out, so capacity
alarms fire on an idle server (or never fire at all).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conformance_kit import expect_ready, http, scripted_params, stream_target

from harness.checks import health
from harness.checks.health import Snapshot
from harness.drivers.asyncio_driver import create_session, open_stream
from harness.protocols import SessionParams, get_codec

OPEN_STREAMS = 4
SETTLE_S = 5.0  # how long a closed connection may take to leave the counts


async def _snapshots(target, connections: int) -> list[Snapshot]:
    out = []
    for endpoint in ("/health", "/v1/stats"):
        resp = await http(target, "GET", endpoint)
        out.append(Snapshot(t_ns=time.monotonic_ns(), body=resp.json(), endpoint=endpoint, connections=connections))
    return out


@pytest.mark.needs("health", "stats")
@pytest.mark.catches("health-lies")
async def test_health_counts_follow_connections(scenario, target, protocol, capabilities):
    codec = get_codec(protocol)  # the streams speak the target's protocol; /health is the same for all
    h = scenario.history(open_streams=OPEN_STREAMS, protocol=protocol)
    snaps = await _snapshots(target, 0)
    baseline = snaps[0].body.get("active_connections")
    params = scripted_params() if "scripted_engine" in capabilities else SessionParams(engine="pocketsphinx")
    sessions = [await create_session(codec, stream_target(target), params, history=h) for _ in range(OPEN_STREAMS)]
    h.session_id = None
    streams = []
    try:
        for s in sessions:
            stream = await open_stream(get_codec(protocol), stream_target(target), s, history=h)
            streams.append(stream)
            if codec.sends_ready:
                await expect_ready(stream)
        snaps += await _snapshots(target, OPEN_STREAMS)
    finally:
        for stream in streams:
            await stream.close()
    # Closing is asynchronous on the server: give the count a bounded time to come back down.
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        body = (await http(target, "GET", "/health")).json()
        if not isinstance(baseline, int) or body.get("active_connections") == baseline:
            break
        await asyncio.sleep(0.2)
    snaps += await _snapshots(target, 0)
    scenario.run_check(health.health, snaps)
    for s in sessions:  # leave nothing behind on the target
        if s.session_id and "delete" in capabilities:
            await http(target, "DELETE", f"/v1/sessions/{s.session_id}")
    scenario.verify()
