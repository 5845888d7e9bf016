"""Long session: concurrent steady streams through the service while the harness samples its
memory (psutil, the service's process tree). Its RSS must grow less than the bound per minute.
CI: three sessions of 40 s of audio at twice real time; nightly: four of 10 minutes in real time."""

from __future__ import annotations

import pytest

from harness.checks import relay as checks
from harness.relay.client import Audio

WARMUP_S = 4.0  # allocations of the first seconds (connections, buffers) are not growth


@pytest.mark.catches("relay-unbounded-accumulator")
def test_service_memory_stays_flat_over_a_long_session(scenario, relay, harness_options):
    if relay.sut is None:
        pytest.skip("the service's memory is sampled only when the harness starts it (--sut, not --sut-url)")
    sessions, audio_s, pace = (4, 600.0, 1.0) if harness_options.nightly else (3, 40.0, 2.0)
    runs = relay.stream_many([([Audio(audio_s)], scenario.history(stream=i)) for i in range(sessions)], pace=pace,
                             timeout_s=audio_s / pace + 120)
    start = min(r.started_ns for r in runs) + int(WARMUP_S * 1e9)
    end = max(r.ended_ns for r in runs)
    samples = relay.sut.memory_between(start, end)
    scenario.check(checks.memory_growth(samples, relay.config.max_rss_growth_mb_per_min, audio_s * sessions))
    for r in runs:
        scenario.check(checks.one_vendor_connection(r.history, r.conns))
    scenario.verify()
