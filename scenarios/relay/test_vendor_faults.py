"""Vendor faults mid-session: the vendor closes 1011 NET-0000 mid-utterance, the connection is cut
without a close frame, or the vendor stalls (the socket stays open, results stop). The service
must have a new vendor connection within the bound and go on; the audio and words lost in the
fault window are measured against a clean run of the same audio."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from relay_kit import SCRIPT, WORD_MS

from harness.checks import relay as checks
from harness.faults.wsproxy import DOWNSTREAM, UPSTREAM, CloseWith, Match, Message, Pipe, Rule
from harness.history import FaultWindow
from harness.relay.client import Audio

AFTER_FRAMES = 20  # the fault acts at the service's 20th audio frame to the vendor (2 s in)


class CutWithoutClose(Rule):
    """At the chosen message both TCP connections are dropped: no close frame either way (a NAT
    timeout, a load balancer restart). Until the fault proxy has its own, this suite's."""

    kind = "cut"

    def act(self, msg: Message, pipe: Pipe) -> bool:
        pipe.link.client.transport.abort()
        pipe.link.upstream.transport.abort()
        return True


class StallResults(Rule):
    """From the chosen result on, the vendor's results on that one connection stop (the socket
    stays open, audio still goes in): a stalled vendor. The window ends when a result arrives on
    another connection (the service reconnected) or the rule is removed."""

    kind = "stall"

    def __init__(self, match: Match):
        super().__init__(DOWNSTREAM, match)
        self.link: Any = None

    def act(self, msg: Message, pipe: Pipe) -> bool:
        if self.link is None:
            self.link = pipe.link
        if pipe.link is self.link:
            return True  # swallowed
        self._end()
        return False


@dataclass(frozen=True)
class VendorFault:
    name: str
    make: Any

    def __str__(self) -> str:
        return self.name


FAULTS = [
    VendorFault("vendor-1011-mid-utterance", lambda: CloseWith(1011, "NET-0000: internal server error",
                                                               direction=UPSTREAM,
                                                               match=Match(kind="binary", nth=AFTER_FRAMES))),
    VendorFault("cut-without-close", lambda: CutWithoutClose(UPSTREAM, Match(kind="binary", nth=AFTER_FRAMES))),
    VendorFault("vendor-stall", lambda: StallResults(Match(kind="Results", nth=AFTER_FRAMES // 3, count=None))),
]
AUDIO_S = 8.0  # long enough for a stall to be seen (the example relay waits 3 s for a result) and streamed past


@pytest.mark.catches("relay-no-vendor-reconnect")
@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_service_recovers_from_a_vendor_fault(scenario, relay, fault):
    rule = fault.make()
    session = relay.stream([Audio(AUDIO_S)], scenario.history(fault=fault.name), rules=[rule])
    relay.save_leg(scenario, session)
    h = session.history
    windows = [w for w in h.faults if w.kind.startswith("ws_")]
    window = windows[0] if windows else FaultWindow(fault.name, {}, h.t0_ns, h.t0_ns)
    scenario.check(checks.fault_recovery(h, session.conns, window, SCRIPT, relay.config.reconnect_within_s, WORD_MS))
    scenario.check(checks.one_vendor_connection(h, session.conns))
    scenario.check(checks.relayed_transcript(h, session.conns, windows))
    scenario.verify()
