"""What the relay scenarios share: the two ends of the wire around the system under test.

``RelayEnv`` holds, for the whole pytest session: the reference server as the vendor (scripted
engine, so lost or doubled audio shows as lost or doubled words), the recording fault proxy in
front of it (:class:`harness.relay.tap.RecordingProxy`, on a background event loop), and the
system under test (started from ``--sut`` with its placeholders filled, the example relay by
default; or one the user runs, ``--sut-url`` with ``--vendor-port``). A scenario streams a
session through the service with :meth:`RelayEnv.stream`, gets the vendor connections of that
session, and runs the pure checks of :mod:`harness.checks.relay` on both.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from harness.checks.relay import session_connections
from harness.history import History
from harness.protocols.base import SessionParams, StreamTarget
from harness.protocols.registry import get_codec
from harness.relay.client import ClientRun, Step, stream_session
from harness.relay.config import RelayConfig
from harness.relay.sut import DEFAULT_SUT, SutError, SutProcess, fill_command
from harness.relay.tap import RecordingProxy, leg_to_json
from harness.vendorleg import VendorConnection, VendorLeg

T = TypeVar("T")
SCRIPT = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
          "quebec romeo sierra tango uniform victor whiskey xray yankee zulu")
# A second session's script, no word in common with SCRIPT: its words in the first session's
# transcript (or on its vendor connection) are cross-talk.
OTHER_SCRIPT = ("apple banana cherry damson elder fennel grape hazel iris jasmine kale lemon mango nutmeg olive "
                "pepper quince radish sage thyme ume vanilla walnut yarrow yam zest")
WORD_MS = 300


class LoopThread:
    """An asyncio loop on a thread of its own: the proxy lives there for the whole session, and
    scenarios (plain, synchronous pytest tests) run their clients on it too."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="relay-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"relay scenario step did not finish within {timeout_s:g} s") from None

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Session:
    """One client session streamed through the service, and what the vendor saw of it."""

    run: ClientRun
    leg: VendorLeg  # the recording proxy's view: every connection, refused ones too, exact close times
    conns: list[VendorConnection]
    server_conns: list[VendorConnection] = field(default_factory=list)  # the vendor's own record of them
    health: list[tuple[int, Any]] = field(default_factory=list)
    health_bodies: list[str] = field(default_factory=list)
    started_ns: int = 0
    ended_ns: int = 0

    @property
    def history(self) -> History:
        return self.run.history

    def foreign_connections(self, own_tags: set[str | None], grace_ns: int = 2_000_000_000) -> list[VendorConnection]:
        """The vendor connections opened while this session tried (to its last record plus
        ``grace_ns``) that carry none of ``own_tags``: what the service opened for an intruder."""
        times = [r.t_ns for r in self.history.records]
        if not times:
            return []
        return [c for c in self.leg.opened_between(min(times), max(times) + grace_ns) if c.tag not in own_tags]


@dataclass
class SessionSpec:
    """One of several concurrent sessions: its steps, history, script, handshake headers (None:
    the codec's, with the suite's key) and when it starts."""

    steps: list[Step]
    history: History
    script: str = SCRIPT
    headers: dict[str, str] | None = None
    start_after_s: float = 0.0


class RelayEnv:
    def __init__(self, *, protocol: str, config: RelayConfig, sut_cmd: str | None, sut_url: str | None,
                 vendor_port: int | None, relay_defects: tuple[str, ...], api_key: str | None, log_dir: Path,
                 start_timeout_s: float = 30.0):
        from harness.services import ReferenceServer, free_port

        if sut_url and sut_cmd:
            raise SutError("give --sut (a command the harness starts) or --sut-url (a service you run), not both")
        if sut_url and not vendor_port:
            raise SutError("--sut-url needs --vendor-port: the loopback port your service expects the vendor on")
        if sut_url and relay_defects:
            raise SutError(f"relay defects ({', '.join(relay_defects)}) are switched on in a service the harness "
                           "starts; they cannot apply to --sut-url")
        self.protocol = protocol
        self.config = config
        self.loop = LoopThread()
        self.server = ReferenceServer(engine="scripted", extra_args=["--deepgram-timeout-s",
                                                                     f"{config.vendor_timeout_s:g}"])
        self.proxy: RecordingProxy | None = None
        self.sut: SutProcess | None = None
        try:
            self.server.start()
            self.proxy = self.loop.run(RecordingProxy(self.server.ws_url, port=vendor_port or 0).start(), 15)
            self.vendor_key = self.server.api_key
            if sut_url:
                self.url = sut_url.rstrip("/")
                self.api_key = api_key or ""
            else:
                port = free_port()
                self.api_key = api_key or secrets.token_hex(12)
                values = {"port": str(port), "deepgram_url": f"{self.proxy.ws_url}/v1/listen",
                          "openai_url": f"{self.proxy.ws_url}/v1", "assemblyai_url": f"{self.proxy.ws_url}/v3/ws",
                          "speechmatics_url": f"{self.proxy.ws_url}/v2", "vendor_key": self.vendor_key,
                          "api_key": self.api_key}
                argv = fill_command(sut_cmd or DEFAULT_SUT, values, relay_defects)
                ready = f"http://127.0.0.1:{port}{config.ready_path}" if config.ready_path else None
                log_dir.mkdir(parents=True, exist_ok=True)
                self.sut = SutProcess(argv, port, ready_url=ready, log_path=log_dir / "sut.log",
                                      start_timeout_s=start_timeout_s).start()
                self.url = self.sut.url
        except BaseException:
            self.close()
            raise

    # --- streaming ---------------------------------------------------------------------------
    def target(self) -> StreamTarget:
        return StreamTarget(self.url, self.api_key)

    def stream(self, steps: list[Step], history: History, *, pace: float = 1.0, faults: Sequence[Mapping[str, Any]] = (),
               health_every_s: float | None = 0.25, timeout_s: float = 120.0,
               headers: dict[str, str] | None = None) -> Session:
        """Stream one session through the service, the vendor proxy running ``faults`` (steps of a
        fault schedule, :func:`harness.relay.tap.session_schedule`), sampling its health meanwhile; returns it with
        its vendor connections. ``headers`` replace the codec's handshake headers (another
        credential, or none)."""
        return self.loop.run(self._stream(steps, history, pace, list(faults), health_every_s, headers=headers),
                             timeout_s)

    def stream_many(self, sessions: list[tuple[list[Step], History]], *, pace: float = 1.0,
                    timeout_s: float = 900.0) -> list[Session]:
        return self.stream_together([SessionSpec(steps, history) for steps, history in sessions], pace=pace,
                                    timeout_s=timeout_s)

    def stream_together(self, specs: list[SessionSpec], *, pace: float = 1.0, timeout_s: float = 120.0) -> list[Session]:
        """Stream concurrent sessions (each its own script, credential and start delay); no health sampling."""
        async def one(spec: SessionSpec) -> Session:
            await asyncio.sleep(spec.start_after_s)
            return await self._stream(spec.steps, spec.history, pace, [], None, spec.script, spec.headers)

        async def all_of() -> list[Session]:
            return list(await asyncio.gather(*(one(s) for s in specs)))
        return self.loop.run(all_of(), timeout_s)

    def grant_token(self) -> str:
        """A one-session token from the service (relay.toml ``token_request``, asked with the
        service key); the error names the request and the answer when there is none."""
        method, path = self.config.token_method_path
        if not path:
            raise SutError("relay.toml names no token_request: the service has no per-session tokens")
        r = httpx.request(method, self.url + path, headers={"Authorization": f"Token {self.api_key}"},
                          timeout=5.0, trust_env=False)
        try:
            token = r.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            token = None
        if r.status_code != 200 or not isinstance(token, str) or not token:
            raise SutError(f"{method} {path} answered {r.status_code} {r.text[:120]!r}: expected 200 with JSON "
                           "\"access_token\" (relay.toml token_request)")
        return token

    async def _stream(self, steps: list[Step], history: History, pace: float, faults: list[Mapping[str, Any]],
                      health_every_s: float | None, script: str = SCRIPT,
                      headers: dict[str, str] | None = None) -> Session:
        assert self.proxy is not None
        codec = get_codec(self.protocol)
        history.meta.update(protocol=self.protocol, engine="scripted", script=script, pace=pace,
                            target="system under test")
        self.proxy.histories.append(history)
        if faults:  # counted from here: the service's next vendor connection is the session's first
            self.proxy.use_session_faults(faults)
        health: list[tuple[int, Any]] = []
        bodies: list[str] = []
        # one HTTP client for the session's samples: making one costs an SSL context (tens of ms of
        # this loop, which also paces the client's audio and runs the proxy)
        http = httpx.AsyncClient(trust_env=False, timeout=2.0, verify=False)
        sampler = (asyncio.get_running_loop().create_task(self._sample_health(http, health, bodies, health_every_s))
                   if health_every_s and self.config.health_path else None)
        started = time.monotonic_ns()
        try:
            run = await stream_session(codec, self.target(), steps, history=history,
                                       params=SessionParams(engine="scripted", script=script), pace=pace,
                                       headers=headers)
            await asyncio.sleep(0.3)  # let the vendor side's close land in the record
        finally:
            if faults:
                self.proxy.use_session_faults(())
            self.proxy.histories.remove(history)
            if sampler is not None:
                sampler.cancel()
                await self._health_once(http, health, bodies)  # one more after the session: back down?
            await http.aclose()
        leg = self.proxy.vendor_leg()
        conns = session_connections(leg, history, self.config.correlate)
        server = await self._server_leg(http_tag := history.session_id)
        server_conns = session_connections(server, history, self.config.correlate) if http_tag else []
        return Session(run, leg, conns, server_conns=server_conns, health=health, health_bodies=bodies,
                       started_ns=started, ended_ns=time.monotonic_ns())

    async def _server_leg(self, tag: str | None) -> VendorLeg:
        """The vendor stand-in's own record (``GET /debug/connections``): what reached the vendor,
        as it counted it. Empty when the server has no such record."""
        async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
            r = await http.get(f"{self.server.url}/debug/connections", params={"tag": tag} if tag else None,
                               headers=self.server.auth_headers())
        if r.status_code == 404:
            return VendorLeg()
        r.raise_for_status()
        return VendorLeg.from_dict(r.json())

    async def _sample_health(self, http: httpx.AsyncClient, out: list[tuple[int, Any]], bodies: list[str],
                             every_s: float) -> None:
        while True:
            await self._health_once(http, out, bodies)
            await asyncio.sleep(every_s)

    async def _health_once(self, http: httpx.AsyncClient, out: list[tuple[int, Any]], bodies: list[str]) -> None:
        try:
            r = await http.get(self.url + self.config.health_path)
        except httpx.HTTPError:
            return
        t = time.monotonic_ns()
        bodies.append(r.text)
        try:
            value = r.json().get(self.config.health_field, "<missing>")
        except (ValueError, AttributeError):
            value = f"<not JSON: {r.text[:60]!r}>"
        out.append((t, value))

    # --- artifacts and life cycle --------------------------------------------------------------
    def save_leg(self, scenario: Any, session: Session, name: str = "vendor-leg.json") -> None:
        for label, conns, filename in (("vendor leg", session.conns, name),
                                       ("vendor leg (server record)", session.server_conns,
                                        name.removesuffix(".json") + "-server.json")):
            path = scenario.artifact_path(filename)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(leg_to_json(VendorLeg(list(conns))), encoding="utf-8")
            scenario.artifact(label, path)

    def close(self) -> None:
        if self.sut is not None:
            self.sut.stop()
        if self.proxy is not None:
            try:
                self.loop.run(self.proxy.close(), 15)
            except Exception:  # noqa: BLE001 - closing on the way out; the server stop below still runs
                pass
        self.server.close()
        self.loop.close()

