"""A session with nothing to transcribe still finalizes: empty transcript, every pipeline step
ready. Silence through PocketSphinx, and no audio at all (over the stream and over HTTP, and
through any protocol's own finalize).

Catches ``zero-segment-crash``: the pipeline failing on an empty transcript, so a user who
pressed record by mistake gets an error page instead of an empty note.
"""

from __future__ import annotations

import pytest
from conformance_kit import (
    connect,
    driver_verdict,
    drain_to_close,
    expect_ready,
    fixture_meta,
    http,
    new_session,
    no_audio_plan,
    run_session,
    unnamed_session,
    wait_state,
)

from harness.checks import lifecycle
from harness.drivers.session import SessionPlan
from harness.protocols import SessionParams
from harness.protocols.base import no_audio_errors
from harness.protocols.registry import codec_class


@pytest.mark.catches("zero-segment-crash")
@pytest.mark.needs("session_lookup")
async def test_silence_finalizes_cleanly(scenario, target, manifest, protocol, capabilities):
    fx = manifest.get("silence-3s")
    h = scenario.history(**fixture_meta(fx), protocol=protocol)
    plan = SessionPlan(pcm=fx.pcm(), params=SessionParams(engine="pocketsphinx"), pace=0, finalize="stream")
    outcome = await run_session(target, plan, h, protocol)
    scenario.check(driver_verdict(outcome))
    if h.session_id:
        body = await wait_state(target, h.session_id)
        # The stream's pipeline events are checked where the protocol carries them.
        scenario.run_check(lifecycle.zero_audio, body, h if "pipeline_events" in capabilities else None)
    else:
        scenario.check(unnamed_session("lifecycle.zero_audio", protocol))
    scenario.verify()


@pytest.mark.needs("session_api", "v1_frames", "http_finalize")
@pytest.mark.catches("zero-segment-crash")
@pytest.mark.parametrize("path", ["stream", "http"])
async def test_zero_audio_finalizes_cleanly(scenario, target, path):
    h = scenario.history(finalize_path=path, audio_bytes=0)
    session = await new_session(target, h)
    if path == "stream":
        stream = await connect(target, session, h)
        async with stream:
            await expect_ready(stream)
            await stream.send_control("finalize")
            await drain_to_close(stream)
    else:
        await http(target, "POST", f"/v1/sessions/{session.session_id}/finalize", history=h)
    body = await wait_state(target, session.session_id)
    scenario.run_check(lifecycle.zero_audio, body, h if path == "stream" else None)
    scenario.verify()


@pytest.mark.catches("zero-segment-crash")
async def test_no_audio_then_the_protocols_finalize(scenario, target, protocol, capabilities):
    """Connect, send no audio, end the stream the protocol's way (Deepgram ``CloseStream``, an
    OpenAI commit, the reference ``finalize`` ...): the session completes, with no words and no
    error but the one the protocol documents for this case. Needs nothing of the target."""
    h = scenario.history(protocol=protocol, audio_bytes=0)
    outcome = await run_session(target, no_audio_plan(), h, protocol)
    scenario.check(driver_verdict(outcome))
    scenario.run_check(lifecycle.no_audio_stream, h, no_audio_errors(codec_class(protocol)))
    if "session_lookup" in capabilities and h.session_id:
        body = await wait_state(target, h.session_id)
        scenario.run_check(lifecycle.zero_audio, body, h if "pipeline_events" in capabilities else None)
    scenario.verify()
