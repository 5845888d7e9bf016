"""Finalize is idempotent: 20 finalizes at once (one on the stream, 19 over HTTP) run the
pipeline exactly once: every event once, no doubled tasks (scripted engine).

Catches ``finalize-not-idempotent``: a double-clicked "stop" that bills, notifies and
summarizes twice.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from conformance_kit import (
    SCRIPT,
    connect,
    drain_to_close,
    expect_ready,
    http,
    new_session,
    scripted_pcm,
    send_all,
    wait_acked,
    wait_pipeline_runs,
)

from harness.checks import lifecycle

WORDS = 7
HTTP_FINALIZES = 19


@pytest.mark.needs("session_api", "v1_frames", "scripted_engine", "http_finalize", "pipeline_events")
@pytest.mark.catches("finalize-not-idempotent")
async def test_concurrent_finalizes_run_the_pipeline_once(scenario, target):
    h = scenario.history(script=SCRIPT, finalizes=HTTP_FINALIZES + 1)
    session = await new_session(target, h)
    pcm = scripted_pcm(WORDS)
    path = f"/v1/sessions/{session.session_id}/finalize"
    limits = httpx.Limits(max_connections=HTTP_FINALIZES + 1)
    async with httpx.AsyncClient(trust_env=False, limits=limits) as client:
        stream = await connect(target, session, h)
        async with stream:
            await expect_ready(stream)
            await send_all(stream, pcm)
            await wait_acked(stream, len(pcm))
            # Open every HTTP connection first, so the finalizes leave together instead of each
            # waiting for its own TCP handshake: they reach the server within a millisecond or two.
            await asyncio.gather(*[http(target, "GET", "/health", client=client) for _ in range(HTTP_FINALIZES)])
            calls = [http(target, "POST", path, history=h, client=client) for _ in range(HTTP_FINALIZES)]
            await asyncio.gather(*calls, stream.send_control("finalize"), return_exceptions=True)
            await drain_to_close(stream)
    body = await wait_pipeline_runs(target, session.session_id)
    scenario.run_check(lifecycle.idempotency, body, h)
    scenario.run_check(lifecycle.pipeline_events, h)
    scenario.verify()
