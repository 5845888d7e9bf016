"""The vendor refuses the handshake (429 with Retry-After, as at a concurrency limit) three times:
the service must retry with a backoff, not a hot loop, connect once the vendor accepts again, and
deliver the audio it held meanwhile. The refusals are a step of the fault proxy's schedule."""

from __future__ import annotations

from relay_kit import SCRIPT, WORD_MS

from harness.checks import relay as checks
from harness.relay.client import Audio

REFUSALS = 3
REFUSE = {"type": "refuse_handshake", "preset": "deepgram-429", "retry_after": "1", "target": {"first": REFUSALS}}


def test_refused_handshakes_are_retried_with_backoff(scenario, relay):
    session = relay.stream([Audio(4.0)], scenario.history(refusals=REFUSALS), faults=[REFUSE])
    relay.save_leg(scenario, session)
    h = session.history
    scenario.check(checks.handshake_backoff(h, session.conns, connect_within_s=relay.config.reconnect_within_s))
    scenario.check(checks.scripted_words(h, session.conns, SCRIPT, WORD_MS))
    scenario.verify()
