"""One session streamed through the service at real time, judged from both ends.

The client writes its first three chunks at once (what a browser does with the audio it captured
while its socket opened), then streams 5 s in real time and finalizes. The one run is judged by
several scenarios: one vendor connection, audio continuity, every byte and word delivered,
finalize, truthful health, and no vendor key reaching the client.
"""

from __future__ import annotations

import pytest
from relay_kit import SCRIPT, WORD_MS, Session

from harness.checks import relay as checks
from harness.history import History
from harness.relay.client import Audio, Burst

STEPS = [Burst(3), Audio(5.0)]


@pytest.fixture(scope="module")
def clean_run(relay_env) -> Session:
    return relay_env.stream(STEPS, History(meta={"scenario": "relay stream"}))


def _record(scenario, relay, run: Session) -> History:
    h = scenario.add_history(run.history)
    relay.save_leg(scenario, run)
    return h


@pytest.mark.catches("relay-duplicate-vendor-connection")
def test_one_vendor_connection_per_session(scenario, relay, clean_run):
    h = _record(scenario, relay, clean_run)
    scenario.check(checks.one_vendor_connection(h, clean_run.conns))
    scenario.verify()


@pytest.mark.catches("relay-burst-gaps")
def test_audio_reaches_the_vendor_without_gaps(scenario, relay, clean_run):
    h = _record(scenario, relay, clean_run)
    scenario.check(checks.audio_continuity(h, clean_run.conns, relay.config.max_gap_ms, relay.config.min_vendor_rate))
    scenario.verify()


@pytest.mark.catches("relay-duplicate-vendor-connection")
def test_every_byte_and_word_delivered(scenario, relay, clean_run):
    h = _record(scenario, relay, clean_run)
    scenario.check(checks.audio_delivered(h, clean_run.conns))
    # and as the vendor itself counted it (its GET /debug/connections), when it keeps a record
    if clean_run.server_conns:
        server_view = checks.audio_delivered(h, clean_run.server_conns)
        server_view.name = "relay.audio_delivered_server_record"
        scenario.check(server_view)
    scenario.check(checks.relayed_transcript(h, clean_run.conns))
    scenario.check(checks.scripted_words(h, clean_run.conns, SCRIPT, WORD_MS))
    scenario.verify()


def test_finalize_closes_the_vendor_stream_after_the_last_final(scenario, relay, clean_run):
    h = _record(scenario, relay, clean_run)
    scenario.check(checks.finalize_closes_stream(h, clean_run.conns))
    scenario.verify()


@pytest.mark.catches("relay-health-na")
def test_health_counts_vendor_connections_truthfully(scenario, relay, clean_run):
    if not relay.config.health_path:
        pytest.skip("relay.toml names no health_path: the service has no health endpoint to judge")
    h = _record(scenario, relay, clean_run)
    scenario.check(checks.health_matches(clean_run.health, clean_run.leg, relay.config.health_field))
    scenario.verify()


def test_no_vendor_key_reaches_the_client(scenario, relay, clean_run):
    h = _record(scenario, relay, clean_run)
    scenario.check(checks.no_key_to_client(h, relay.vendor_key, clean_run.health_bodies))
    scenario.verify()
