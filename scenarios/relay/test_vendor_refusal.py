"""The vendor refuses the handshake (429 with Retry-After, as at a concurrency limit) three times:
the service must retry with a backoff, not a hot loop, connect once the vendor accepts again, and
deliver the audio it held meanwhile."""

from __future__ import annotations

from relay_kit import SCRIPT, WORD_MS

from harness.checks import relay as checks
from harness.relay.client import Audio

REFUSALS = 3


def test_refused_handshakes_are_retried_with_backoff(scenario, relay):
    relay.loop.call(relay.proxy.refuse_next, REFUSALS, 429, 1.0)
    session = relay.stream([Audio(4.0)], scenario.history(refusals=REFUSALS))
    relay.save_leg(scenario, session)
    h = session.history
    scenario.check(checks.handshake_backoff(h, session.conns, connect_within_s=relay.config.reconnect_within_s))
    scenario.check(checks.scripted_words(h, session.conns, SCRIPT, WORD_MS))
    scenario.verify()
