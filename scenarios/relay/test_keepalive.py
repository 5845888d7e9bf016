"""Keepalive during client silence: the client stops sending anything (a muted microphone) for
longer than the vendor's idle timeout; the service must keep its vendor connection alive
(Deepgram: KeepAlive, else it closes 1011 NET-0001)."""

from __future__ import annotations

import pytest

from harness.checks import relay as checks
from harness.history import History
from harness.relay.client import Audio, Silence

MARGIN_S = 2.0  # the silence outlasts the vendor's timeout by this much


@pytest.mark.catches("relay-no-keepalive")
def test_vendor_connection_survives_client_silence(scenario, relay):
    silence_s = relay.config.vendor_timeout_s + MARGIN_S
    session = relay.stream([Audio(1.0), Silence(silence_s), Audio(1.0)],
                           scenario.history(silence_s=silence_s, vendor_timeout_s=relay.config.vendor_timeout_s))
    relay.save_leg(scenario, session)
    scenario.check(checks.keepalive_in_silence(session.history, session.conns, session.run.silences,
                                               relay.config.vendor_timeout_s))
    scenario.verify()
