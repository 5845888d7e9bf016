"""Partials keep coming while speech flows: no stretch of over 1 s of speech without one, from
the first partial to the end of the speech (PocketSphinx, real-time pace).

Gaps are judged on the audio's clock (each hypothesis says what audio it covers), so a machine
busy with other work, which makes hypotheses late and bunched, does not fail a healthy backend;
the wall-clock gaps are kept in the evidence.

Against the embedded reference server this runs on a dedicated one with ``--max-segment-s 2``,
so a 4.3 s utterance is cut into several segments while the speaker goes on: a backend that
stops sending partials after its first engine flush (``stream-gap``) leaves the user staring at
a frozen line for a whole segment. Against a user's backend it runs on the target as is.
"""

from __future__ import annotations

import pytest
from conformance_kit import ServerTarget, driver_verdict, fixture_meta, run_session

from harness.checks import conformance
from harness.drivers.session import SessionPlan
from harness.protocols import SessionParams
from harness.services import ReferenceServer

FIXTURE = "medical-01-rms"  # the longest single utterance: 4.3 s of speech
MAX_GAP_MS = 1000
MAX_SEGMENT_S = 2.0


@pytest.fixture
def cadence_target(target):
    if not target.embedded:
        yield target
        return
    with ReferenceServer(engine="pocketsphinx", defects=target.defects,
                         extra_args=["--max-segment-s", str(MAX_SEGMENT_S)]) as server:
        yield ServerTarget(server)


@pytest.mark.needs("partials")
@pytest.mark.catches("stream-gap")
async def test_partials_keep_flowing(scenario, cadence_target, manifest, protocol):
    fx = manifest.get(FIXTURE)
    h = scenario.history(**fixture_meta(fx), protocol=protocol)
    plan = SessionPlan(pcm=fx.pcm(), params=SessionParams(engine="pocketsphinx"), pace=1.0, finalize="stream")
    outcome = await run_session(cadence_target, plan, h, protocol)
    scenario.check(driver_verdict(outcome))
    scenario.run_check(conformance.partial_coverage, h, max_gap_ms=MAX_GAP_MS)
    scenario.verify()
