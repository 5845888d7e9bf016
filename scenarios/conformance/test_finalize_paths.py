"""Every finalize path ends the same way: over the stream, over HTTP after the audio, and over
HTTP while audio is still streaming (scripted engine: the transcripts are exact).

A backend whose HTTP finalize marks the session completed without running post-processing
(``finalize-http-skips-pipeline``) leaves users of that path with no summary, tasks or events.
"""

from __future__ import annotations

import asyncio

import pytest
from conformance_kit import (
    PIPELINE_TIMEOUT_S,
    SCRIPT,
    WORD_BYTES,
    connect,
    driver_verdict,
    drain_to_close,
    expect_ready,
    expected_words,
    http,
    new_session,
    run_session,
    scripted_params,
    scripted_pcm,
    send_all,
    wait_acked,
    wait_state,
)

from harness.checks import conformance, integrity, latency, lifecycle
from harness.drivers.session import SessionPlan

WORDS = 7  # one final of 5 words while streaming, 2 more at finalize


async def _planned(scenario, target, finalize: str):
    h = scenario.history(finalize_path=finalize, script=SCRIPT, expected_text=" ".join(expected_words(WORDS)))
    plan = SessionPlan(pcm=scripted_pcm(WORDS), params=scripted_params(), pace=0, finalize=finalize,
                       finish_timeout_s=PIPELINE_TIMEOUT_S)
    outcome = await run_session(target, plan, h)
    return h, outcome


@pytest.mark.needs("session_api", "v1_frames", "scripted_engine", "http_finalize", "pipeline_events")
@pytest.mark.catches("finalize-http-skips-pipeline")
async def test_finalize_paths_are_equivalent(scenario, target):
    h_stream, out_stream = await _planned(scenario, target, "stream")
    h_http, out_http = await _planned(scenario, target, "http")
    for h, out in ((h_stream, out_stream), (h_http, out_http)):
        scenario.run_check(lifecycle.pipeline_events, h)
        for v in integrity.all_checks(h):  # words, segments, replays, order, gaps
            scenario.check(v)
        scenario.check(driver_verdict(out))  # last: its "gave up" is a consequence, not the symptom
    scenario.run_check(latency.finalize_latency, h_stream)
    body_stream = await wait_state(target, h_stream.session_id)
    body_http = await wait_state(target, h_http.session_id)
    scenario.run_check(lifecycle.finalize_equivalence, body_http, body_stream)

    # HTTP finalize while audio is still being sent: the pipeline runs once, as on the other paths.
    h_mid = scenario.history(finalize_path="http-while-streaming", script=SCRIPT)
    session = await new_session(target, h_mid)
    pcm = scripted_pcm(WORDS)
    half = 4 * WORD_BYTES
    stream = await connect(target, session, h_mid)
    async with stream:
        await expect_ready(stream)
        await send_all(stream, pcm[:half])
        await wait_acked(stream, half)
        finalize = asyncio.create_task(http(target, "POST", f"/v1/sessions/{session.session_id}/finalize", history=h_mid))
        try:
            await send_all(stream, pcm, start=half)  # may be refused once finalize has landed
        except Exception as exc:  # noqa: BLE001 - a close mid-send is an allowed answer, recorded below
            h_mid.add("note", text=f"sending after finalize stopped: {type(exc).__name__}: {exc}")
        resp = await finalize
        await drain_to_close(stream)
    scenario.run_check(conformance.http_answer, "finalize while streaming", resp.status_code, [200, 202])
    scenario.run_check(lifecycle.pipeline_events, h_mid)
    body_mid = await wait_state(target, session.session_id)
    # The audio after the finalize may or may not be in the transcript; the pipeline must be the same.
    scenario.run_check(lifecycle.finalize_equivalence, body_mid, body_stream, compare_transcripts=False)
    scenario.verify()
