"""The whole session lifecycle on real speech: create, ready, acks, partials, finals, finalize,
every pipeline event, with accuracy (WER) and latency measured (PocketSphinx, real-time pace)."""

from __future__ import annotations

import pytest
from conformance_kit import MAX_WER, driver_verdict, fixture_meta, run_session, unnamed_session, wait_state

from harness.checks import accuracy, conformance, delivery, integrity, latency, lifecycle, session
from harness.checks.verdict import safe_check
from harness.drivers.session import SessionPlan
from harness.protocols import SessionParams

FIXTURE = "meeting-01-rms"
CREATE_LIMIT_MS = 2000


@pytest.mark.catches("pipeline-event-missing")
async def test_session_lifecycle(scenario, target, manifest, protocol, capabilities):
    fx = manifest.get(FIXTURE)
    h = scenario.history(**fixture_meta(fx), protocol=protocol)
    plan = SessionPlan(pcm=fx.pcm(), params=SessionParams(engine="pocketsphinx"), pace=1.0, finalize="stream")
    outcome = await run_session(target, plan, h, protocol)
    # Each check runs on its own: one that raises is an unknown verdict naming it, and the rest still run.
    checks = [safe_check(driver_verdict, outcome), safe_check(conformance.stream_lifecycle, h, ready="ready" in capabilities,
                         acks="offsets" in capabilities),
              safe_check(accuracy.wer, h, max_wer=MAX_WER), safe_check(integrity.segments, h),
              safe_check(integrity.ordering, h),
              safe_check(delivery.finals_once_per_connection, h, "segment_ids" in capabilities),
              safe_check(latency.connect, h), safe_check(latency.first_partial, h), safe_check(latency.final_latency, h)]
    if "session_api" in capabilities:  # a creation step to time
        checks.append(safe_check(latency.session_creation, h, limit_ms=CREATE_LIMIT_MS))
    if "pipeline_events" in capabilities:  # the pipeline's events come on the stream
        checks += [safe_check(lifecycle.pipeline_events, h), safe_check(latency.pipeline_latency, h)]
    if "session_lookup" in capabilities and h.session_id:  # the session's record can be read back
        body = await wait_state(target, h.session_id)  # a stream's close may come before the pipeline ends
        checks.append(safe_check(conformance.session_state, body, who=f"session {h.session_id} ({protocol})"))
    elif "session_lookup" in capabilities:
        checks.append(unnamed_session("lifecycle.session_state", protocol))
    for v in checks:
        scenario.check(v)
    scenario.run_check(session.session_success, h, checks)
    scenario.verify()
