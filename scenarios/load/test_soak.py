"""Soak: steady load of conversation-length sessions while the backend's ``rss_bytes`` (GET
/health) is sampled every 2 s; a least-squares slope and the total growth after a warm-up judge
whether memory stays bounded. Catches ``unbounded-transcript`` (every partial kept for the
session's life): at six streams it grows by tens of MB a minute, a healthy server stays flat.
"""

from __future__ import annotations

import pytest

from harness.load.soak import GrowthLimits

SOAK_FIXTURE = ("conversation-meeting",)


@pytest.mark.catches("unbounded-transcript")
def test_soak_memory_bounded_short(scenario, load_job):
    """The CI-sized soak: 90 s, six streams (one conversation each), 20 s warm-up."""
    outcome = load_job(users=6, duration_s=90, fixtures=SOAK_FIXTURE,
                       soak_limits=GrowthLimits(warmup_s=20, max_slope_mb_per_min=2.0, max_growth_mb=25.0))
    scenario.check(outcome.soak_verdict)
    for verdict in outcome.verdicts:
        scenario.check(verdict)
    scenario.verify()


@pytest.mark.slow
@pytest.mark.catches("unbounded-transcript")
def test_soak_memory_bounded(scenario, load_job):
    """The nightly soak: 4 min, ten streams, sessions streaming the conversation twice."""
    outcome = load_job(users=10, duration_s=240, fixtures=SOAK_FIXTURE, loops=2,
                       soak_limits=GrowthLimits(warmup_s=45, max_slope_mb_per_min=2.0, max_growth_mb=25.0))
    scenario.check(outcome.soak_verdict)
    for verdict in outcome.verdicts:
        scenario.check(verdict)
    scenario.verify()
