"""A pipeline that stops making progress is reported as stalled in /debug/transactions.

The session is created with the ``hold_step`` test hook, so its pipeline stops at a step until
released; the server runs with a short ``--stall-after``. It needs its own server (the embedded
one keeps the default 60 s), started with the same planted defects as the run's. Against a
user's backend (no test hooks) it is left out at collection, with the reason printed.

Catches ``no-stall-detection``: a stuck transaction that no dashboard or alert ever shows.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conformance_kit import (
    ServerTarget,
    connect,
    drain_to_close,
    expect_ready,
    http,
    new_session,
    scripted_params,
    scripted_pcm,
    send_all,
    wait_acked,
    wait_state,
)

from harness.checks import conformance, stall
from harness.services import ReferenceServer

STALL_AFTER_S = 1.0
GRACE_S = 3.0
HOLD_STEP = "analytics"


@pytest.fixture
def stall_server(target):
    with ReferenceServer(engine="scripted", defects=target.defects, test_hooks=True,
                         extra_args=["--stall-after", str(STALL_AFTER_S)]) as server:
        yield server


@pytest.mark.needs("session_api", "v1_frames", "scripted_engine", "embedded_server")
@pytest.mark.catches("no-stall-detection")
async def test_held_pipeline_is_marked_stalled(scenario, stall_server):
    target = ServerTarget(stall_server)
    h = scenario.history(hold_step=HOLD_STEP, stall_after_s=STALL_AFTER_S)
    session = await new_session(target, h, scripted_params(hold_step=HOLD_STEP))
    pcm = scripted_pcm(5)
    stream = await connect(target, session, h)
    async with stream:
        await expect_ready(stream)
        await send_all(stream, pcm)
        await wait_acked(stream, len(pcm))
        await stream.send_control("finalize")
        held_since = time.monotonic_ns()
        snapshots = []
        deadline = time.monotonic() + STALL_AFTER_S + GRACE_S + 1.0
        while time.monotonic() < deadline:
            resp = await http(target, "GET", "/debug/transactions", history=h)
            snapshots.append({"t_ns": time.monotonic_ns(), "body": resp.json()})
            if stall.transaction_status(resp.json(), session.session_id) == "stalled":
                break
            await asyncio.sleep(0.25)
        scenario.run_check(stall.stall_detected, snapshots, session.session_id, held_since, STALL_AFTER_S, GRACE_S)
        release = await http(target, "POST", f"/debug/release/{session.session_id}", history=h)
        scenario.run_check(conformance.http_answer, "release a held pipeline", release.status_code, [200, 202, 204])
        await drain_to_close(stream)
    body = await wait_state(target, session.session_id)
    scenario.run_check(conformance.session_state, body, who=f"session {session.session_id} after release")
    scenario.verify()
