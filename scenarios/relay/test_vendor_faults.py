"""Vendor faults mid-session: the vendor closes 1011 NET-0000 mid-utterance, the connection is cut
without a close frame, or the vendor stalls (the socket stays open, results stop). The service
must have a new vendor connection within the bound and go on; the audio and words lost in the
fault window are measured against a clean run of the same audio.

Each fault is a step of the fault proxy's schedule (harness/faults/schedule.py, the same data a
``[[fault]]`` table of ``harness serve --faults`` holds), on the session's first vendor connection.
"""

from __future__ import annotations

import pytest
from relay_kit import SCRIPT, WORD_MS

from harness.checks import relay as checks
from harness.history import FaultWindow
from harness.relay.client import Audio

AT_AUDIO_MS = 2000  # the fault acts once 2 s of the service's audio reached the proxy
FIRST = {"nth": 1}  # the session's first vendor connection (relay_kit counts per session)
FAULTS = {
    "vendor-1011-mid-utterance": {"type": "vendor_error", "preset": "deepgram-net-0000",
                                  "at": {"audio_ms": AT_AUDIO_MS}, "target": FIRST},
    "cut-without-close": {"type": "cut", "at": {"audio_ms": AT_AUDIO_MS}, "target": FIRST},
    # results stop after the 6th (about 2 s in); audio still goes in
    "vendor-stall": {"type": "stall", "at": {"result": 6}, "target": FIRST},
}
AUDIO_S = 8.0  # long enough for a stall to be seen (the example relay waits 3 s for a result) and streamed past


@pytest.mark.catches("relay-no-vendor-reconnect")
@pytest.mark.parametrize("fault", list(FAULTS))
def test_service_recovers_from_a_vendor_fault(scenario, relay, fault):
    session = relay.stream([Audio(AUDIO_S)], scenario.history(fault=fault), faults=[FAULTS[fault]])
    relay.save_leg(scenario, session)
    h = session.history
    windows = list(h.faults)
    window = windows[0] if windows else FaultWindow(fault, {}, h.t0_ns, h.t0_ns)
    scenario.check(checks.fault_recovery(h, session.conns, window, SCRIPT, relay.config.reconnect_within_s, WORD_MS))
    scenario.check(checks.one_vendor_connection(h, session.conns))
    scenario.check(checks.relayed_transcript(h, session.conns, windows))
    scenario.verify()
