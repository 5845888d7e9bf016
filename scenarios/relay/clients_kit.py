"""The relay suite's ``clients`` group: real voice-agent STT client libraries as the system under
test, each driven through the same vendor faults (``harness.relay.clients``).

Topology, per case (one client library x one fault)::

    client library (its driver's subprocess) ──► recording fault proxy ──► reference server as Deepgram
      fed a fixture WAV at real time              (this case's schedule;    (scripted engine: lost audio
                                                   records the vendor leg)   shows as lost words)

Every case has its own proxy (so "the 1st connection" in a schedule is the case's own first) on
the relay suite's loop, in front of the relay suite's vendor stand-in (whose Deepgram idle timeout
is relay.toml's ``vendor_timeout_s``). All cases of the selected clients run side by side: one
subprocess per library, its cases concurrent inside it, the libraries concurrent with each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay_kit import SCRIPT

from harness.checks.clients import Expectation
from harness.faults.schedule import Schedule
from harness.history import FaultWindow, History
from harness.paths import shipped_fixtures
from harness.relay.clients import DRIVERS, driver_module
from harness.relay.clients.base import Case, Documented
from harness.relay.clients.runner import ClientRun, run_batch
from harness.relay.tap import RecordingProxy
from harness.vendorleg import VendorConnection

AUDIO_S = 10.0  # room to reconnect (Pipecat waits 4 s) and then stream two more segments (5 words, 1.5 s each)
AT_MS = 2000  # the fault acts after 2 s of audio on the first connection: mid-utterance
REFUSALS = 3  # LiveKit's documented budget is 3 retries: the 4th attempt is its last
SILENCE_MARGIN_S = 2.0  # the silence outlasts the vendor's idle timeout by this much
WAV = "conversation-meeting.wav"


def _sum(delays: tuple[float, ...], n: int) -> float | None:
    return round(sum(delays[:n]), 3) if len(delays) >= n else None


@dataclass(frozen=True)
class ClientFault:
    """One fault a client is driven through: the proxy's schedule, the audio plan and what the
    library's documented behaviour makes of it."""

    name: str
    schedule: list[dict[str, Any]]
    expect: Callable[[Documented], Expectation]
    silence: bool = False  # the client goes quiet (no audio at all) past the vendor's idle timeout

    def steps(self, vendor_timeout_s: float) -> list[tuple[str, float]]:
        if self.silence:
            return [("audio", 1.0), ("silence", vendor_timeout_s + SILENCE_MARGIN_S), ("audio", 1.0)]
        return [("audio", AUDIO_S)]

    def __str__(self) -> str:
        return self.name


def _drop_expectation(what: str) -> Callable[[Documented], Expectation]:
    def expect(d: Documented) -> Expectation:
        if not d.reconnects:
            return Expectation(False, text=f"after {what}: no reconnect")
        return Expectation(True, d.retry_delays_s[0], text=f"after {what}: reconnect after {d.retry_delays_s[0]:g} s")
    return expect


def _refusal_expectation(d: Documented) -> Expectation:
    if not d.retries_refusal:
        return Expectation(False, attempts_at_most=1, text="429 at the handshake: not retried")
    enough = d.max_attempts is None or d.max_attempts > REFUSALS
    delay = _sum(d.retry_delays_s, REFUSALS)
    return Expectation(enough, delay, d.max_attempts,
                       text=f"429 x{REFUSALS}: retried{f' after {delay:g} s in all' if delay else ''}"
                            + (f", at most {d.max_attempts} attempts" if d.max_attempts else ""))


FAULTS = [
    ClientFault("vendor-1011", [{"type": "vendor_error", "preset": "deepgram-net-0000", "at": {"audio_ms": AT_MS},
                                 "target": {"nth": 1}}], _drop_expectation("1011 NET-0000")),
    ClientFault("cut", [{"type": "cut", "at": {"audio_ms": AT_MS}, "target": {"nth": 1}}],
                _drop_expectation("a cut without close")),
    ClientFault("429-handshake", [{"type": "refuse_handshake", "preset": "deepgram-429",
                                   "target": {"first": REFUSALS}}], _refusal_expectation),
    ClientFault("stall", [{"type": "stall", "at": {"audio_ms": AT_MS}, "target": {"nth": 1}}],
                lambda d: Expectation(d.detects_stall, text="stall (socket open, results stop): "
                                      + ("detected" if d.detects_stall else "not detected"))),
    ClientFault("silence", [], lambda d: Expectation(d.keepalive, text="client silence past the vendor's idle "
                                                     "timeout: " + ("KeepAlive keeps the connection" if d.keepalive
                                                                    else "no KeepAlive: closed NET-0001")),
                silence=True),
]
FAULT_NAMES = [f.name for f in FAULTS]
CLIENTS = list(DRIVERS)
CLEAN = "clean"  # the baseline of AUDIO_S; "clean-silence" the baseline of the silence case's audio


@dataclass
class CaseResult:
    client: str
    fault: str
    run: ClientRun
    conns: list[VendorConnection]
    windows: list[FaultWindow] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def history(self) -> History:
        return self.run.history


class ClientBench:
    """Runs every case of the given clients once, side by side, and keeps the results."""

    def __init__(self, relay: Any, log_dir: Path, vendor_timeout_s: float):
        self.relay = relay
        self.log_dir = log_dir
        self.vendor_timeout_s = vendor_timeout_s
        self.results: dict[tuple[str, str], CaseResult] = {}
        self.ran: set[str] = set()

    def get(self, client: str, fault: str, want: list[str]) -> CaseResult:
        if client not in self.ran:
            self.run([c for c in want if c not in self.ran] or [client])
        return self.results[(client, fault)]

    def run(self, clients: list[str]) -> None:
        self.relay.loop.run(self._run(clients), timeout_s=240)
        self.ran.update(clients)

    async def _run(self, clients: list[str]) -> None:
        plans = [(f.name, f.schedule, f.steps(self.vendor_timeout_s)) for f in FAULTS]
        plans += [(CLEAN, [], [("audio", AUDIO_S)]),
                  (CLEAN + "-silence", [], [("audio", 2.0)])]
        wav = str(shipped_fixtures() / WAV)
        proxies: dict[tuple[str, str], RecordingProxy] = {}
        batches = []
        try:
            for client in clients:
                cases, histories = [], {}
                for name, schedule, steps in plans:
                    proxy = RecordingProxy(self.relay.server.ws_url, extra_query={"script": SCRIPT},
                                           schedule=Schedule.from_data({"fault": schedule}) if schedule else None)
                    await proxy.start()
                    proxies[(client, name)] = proxy
                    case = Case(f"{client}/{name}", proxy.ws_url, self.relay.vendor_key, wav, steps)
                    h = History(meta={"client": client, "fault": name, "engine": "scripted", "script": SCRIPT,
                                      "target": f"{client} (client library)"})
                    proxy.histories.append(h)
                    cases.append(case)
                    histories[case.case_id] = h
                deadline = max(sum(s for _, s in c.steps) for c in cases) + 60
                batches.append(run_batch(client, cases, histories, self.log_dir / f"{client}.log", deadline))
            runs_per_client = await asyncio.gather(*batches)
            for client, runs in zip(clients, runs_per_client):
                for name, _, _ in plans:
                    run = runs[f"{client}/{name}"]
                    proxy = proxies[(client, name)]
                    self.results[(client, name)] = CaseResult(
                        client, name, run, list(proxy.vendor_leg().connections), list(run.history.faults),
                        self.log_dir / f"{client}.log")
        finally:
            for proxy in proxies.values():
                await proxy.close()


def documented(client: str) -> Documented:
    return driver_module(client).DOCUMENTED
