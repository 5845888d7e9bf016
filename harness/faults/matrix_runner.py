"""Runs the chaos matrix: many fault cases side by side on one event loop in a background thread.

Each case gets what its steps act on (its own Toxiproxy proxy, its own WebSocket fault proxy, or
its own reference server for process faults), one session through it, and its schedule run from
the client's side by :mod:`harness.faults.scheduler`. The stream goes through the fault, HTTP goes
direct. The verdicts are :func:`harness.checks.chaos.case_verdicts`.

On a target without resume (:func:`harness.faults.matrix.resumes`) each case also gets a clean
baseline run of the same audio on the same target (its segments, with times), the states of the
sessions its connections opened (read back where the target shows them), and a short clean
session opened after it (the backend still serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from harness.checks import integrity
from harness.checks import reconnect as reconnect_checks
from harness.checks._common import ns_to_ms
from harness.checks.chaos import SILENT_SLACK_S
from harness.drivers.asyncio_driver import AsyncSessionClient, create_session, open_stream
from harness.drivers.session import SessionOutcome, SessionPlan
from harness.faults import toxiproxy as tp
from harness.faults import wsproxy as wsp
from harness.faults.base import FaultContext
from harness.faults import matrix
from harness.faults.matrix import SCRIPT, WORD_MS, CaseSkipped, FaultCase
from harness.faults.scheduler import SessionEnded, run_steps
from harness.history import History
from harness.protocols.base import BYTES_PER_SECOND, Codec, SessionInfo, SessionParams, StreamTarget
from harness.protocols.events import Closed, Ready
from harness.protocols.registry import get_codec

PROBE_FIXTURE = "meeting-03-awb"  # the short clean session opened after a case (the backend still serves)
STATE_WAIT_S = 20.0  # how long a left-behind session may stay open before it counts as hung (> 2 heartbeats)


@dataclass
class ChaosEnv:
    """Where and how the matrix runs: the target, the Toxiproxy API, the server defects."""

    http_url: str
    api_key: str
    protocol: str = "reference"
    toxiproxy_url: str | None = None
    toxiproxy_missing: str = ""
    defects: tuple[str, ...] = ()
    embedded: bool = True  # process faults and dedicated servers need the embedded server
    manifest: Any = None
    allow_remote: bool = False
    max_parallel: int = 8
    max_servers: int = 2  # dedicated servers at a time (each is a Python process starting up)
    max_asr: int = 2  # cases on a real recognizer at a time: a server decodes them all in one process
    stagger_s: float = 0.4  # between the first case starts
    capabilities: frozenset[str] | None = None  # the target's (None: the codec's, plus the embedded server's)

    @property
    def caps(self) -> frozenset[str]:
        if self.capabilities is not None:
            return self.capabilities
        from harness.protocols.capabilities import target_capabilities

        return target_capabilities(self.protocol, self.embedded)

    @property
    def resumes(self) -> bool:
        return matrix.resumes(self.caps)


@dataclass
class CaseRun:
    """A finished case: its history and outcome (verdicts are computed by :func:`case_verdicts`)."""

    case: FaultCase
    history: History
    outcome: SessionOutcome | None = None
    baseline: list[str] | None = None
    error: str | None = None  # the harness broke (not a verdict about the backend)
    capabilities: frozenset[str] = frozenset()  # the target's: which checks apply
    baseline_segments: list[reconnect_checks.Segment] | None = None  # without resume: the clean run's finals
    session_states: dict[str, str | None] = field(default_factory=dict)  # without resume: each connection's session
    probe: dict[str, Any] | None = None  # without resume: the clean session opened after the case
    injected_error: str | None = None  # the fault could not be placed (session ended first)
    extra: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0


class MatrixRunner:
    """Runs cases side by side on an event loop in a background thread; ``result(case)`` blocks
    until that case is done. Faults cannot interfere: each case has its own proxy (Toxiproxy or
    wsproxy) or its own server."""

    def __init__(self, env: ChaosEnv, selected: Sequence[FaultCase]):
        self.env = env
        self.cases = list(selected)
        self.futures: dict[str, Future[CaseRun]] = {c.id: Future() for c in self.cases}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._baselines: dict[tuple[Any, ...], Future[list[reconnect_checks.Segment]]] = {}

    def start(self) -> MatrixRunner:
        self._thread = threading.Thread(target=self._main, name="chaos-matrix", daemon=True)
        self._thread.start()
        return self

    def result(self, case: FaultCase, timeout_s: float = 600.0) -> CaseRun:
        future = self.futures.get(case.id)
        if future is None:
            raise KeyError(f"case {case.id!r} was not scheduled in this run")
        return future.result(timeout=timeout_s)

    def close(self, timeout_s: float = 120.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    # --- the background loop -------------------------------------------------------------
    def _main(self) -> None:
        asyncio.run(self._run_all())

    async def _run_all(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        slots = asyncio.Semaphore(self.env.max_parallel)
        servers = asyncio.Semaphore(self.env.max_servers)
        asr = asyncio.Semaphore(self.env.max_asr)
        lab: tp.ToxiproxyLab | None = None
        if self.env.toxiproxy_url:
            lab = tp.ToxiproxyLab(self.env.toxiproxy_url, allow_remote=self.env.allow_remote)
        try:
            tasks = [asyncio.create_task(self._one(c, slots, servers, asr, lab, i * self.env.stagger_s))
                     for i, c in enumerate(self.cases)]
            runner = asyncio.gather(*tasks, return_exceptions=True)
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({runner, stop}, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[arg-type]
            if not runner.done():
                for t in tasks:
                    t.cancel()
                with contextlib.suppress(BaseException):
                    await runner
            stop.cancel()
        finally:
            if lab is not None:
                with contextlib.suppress(tp.ToxiproxyError):
                    await lab.close()  # /reset: the rollback, whatever happened
            for f in self.futures.values():
                if not f.done():
                    f.set_exception(RuntimeError("the chaos matrix stopped before this case ran"))

    async def _one(self, case: FaultCase, slots: asyncio.Semaphore, servers: asyncio.Semaphore,
                   asr: asyncio.Semaphore, lab: tp.ToxiproxyLab | None, delay_s: float) -> None:
        future = self.futures[case.id]
        try:
            skip = self._skip_reason(case)
            if skip:
                raise CaseSkipped(skip)
            case = matrix.for_target(case, self.env.caps, lambda c: len(self._pcm(c)) / (BYTES_PER_SECOND / 1000))
            # Staggered starts: sessions created all at once on two cores measure the herd, not the backend.
            await asyncio.sleep(min(delay_s, self.env.stagger_s * self.env.max_parallel))
            async with contextlib.AsyncExitStack() as limits:
                await limits.enter_async_context(slots)
                if case.own_server:
                    await limits.enter_async_context(servers)
                if case.engine != "scripted":
                    await limits.enter_async_context(asr)
                run = await self._run_case(case, lab)
            future.set_result(run)
        except BaseException as exc:  # the test re-raises it: a harness error, never a pass
            if not future.done():
                future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _skip_reason(self, case: FaultCase) -> str:
        """What the collection cannot know: a Toxiproxy server missing (the capabilities are
        judged at collection, :func:`harness.faults.matrix.case_needs`)."""
        if case.own_server and not self.env.embedded:
            return "needs a server the harness starts itself (process faults, small heartbeat); --target given"
        if "toxiproxy" in case.layers and not self.env.toxiproxy_url:
            return self.env.toxiproxy_missing or "no Toxiproxy server"
        return ""

    async def _run_case(self, case: FaultCase, lab: tp.ToxiproxyLab | None) -> CaseRun:
        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            http_url, api_key, server = self.env.http_url, self.env.api_key, None
            if case.own_server:
                server = await self._dedicated_server(case)
                stack.push_async_callback(asyncio.to_thread, server.close)
                http_url, api_key = server.url, server.api_key
            if case.kind == "silent_client":
                run = await run_silent_client(case, http_url, api_key, server, self.env)
                run.duration_s = time.monotonic() - started
                return run
            resumes = self.env.resumes
            segments = None if resumes else await self._baseline_segments(case)
            baseline = await self._baseline(case) if resumes else [w for s in segments or [] for w in s.words]
            fixture = self.env.manifest.get(case.utterances[0] if case.utterances else case.fixture_id)
            history = History(meta={"fixture_id": self._fixture_label(case), "fault": case.fault,
                                    "fault_params": case.params, "baseline_text": " ".join(baseline),
                                    "speech_onset_ms": fixture.speech_onset_ms,
                                    "baseline": "scripted" if case.engine == "scripted" and resumes else
                                    "a clean run of the same audio on the same target"})
            done = asyncio.Event()
            pcm = self._pcm(case)
            steps = [s.fresh() for s in case.steps]  # a fault runs once: each run gets its own
            layers: dict[str, Any] = {}
            if server is not None:
                layers["process"] = server
                if "docker" in case.layers:  # a container server (harness.containers.matrix) is the docker layer too
                    layers["docker"] = server
            stream_base = None
            if "toxiproxy" in case.layers:
                assert lab is not None
                layers["toxiproxy"] = toxi = await lab.proxy(http_url)
                stack.push_async_callback(toxi.close)
                stream_base = toxi.ws_url
            elif "wsproxy" in case.layers:
                layers["wsproxy"] = ws = await stack.enter_async_context(
                    wsp.WsFaultProxy(http_url, history, allow_remote=self.env.allow_remote))
                stream_base = ws.ws_url
            target = StreamTarget(http_url, api_key, stream_base_url=stream_base)
            run = CaseRun(case, history, baseline=baseline, capabilities=self.env.caps, baseline_segments=segments)
            codec = get_codec(self.env.protocol)
            client = AsyncSessionClient(codec, target, self._plan(case, pcm), history)
            session = asyncio.create_task(client.run())
            nemesis = (asyncio.create_task(run_steps(steps, FaultContext([history], layers), history, done))
                       if steps else None)
            try:
                run.outcome = await session
            finally:
                done.set()
                if nemesis is not None:
                    try:
                        await asyncio.wait_for(nemesis, 60)
                    except SessionEnded as exc:
                        run.injected_error = str(exc)
                    except Exception as exc:
                        run.error = f"the fault could not be injected: {''.join(traceback.format_exception_only(exc)).strip()}"
            ws_proxy = layers.get("wsproxy")
            if ws_proxy is not None and ws_proxy.errors and run.error is None:
                run.error = "the WebSocket fault proxy failed: " + "; ".join(ws_proxy.errors[:3])
            if case.trust_latency_ms is not None:
                run.extra["latency_windows"] = [w for w in history.faults if w.end_ns is not None]
            if not resumes and run.error is None:
                direct = StreamTarget(http_url, api_key)
                if "session_lookup" in self.env.caps:
                    run.session_states = await self._session_states(codec, direct, _stream_session_ids(codec, run))
                run.probe = await self._probe(case, direct)
            run.duration_s = time.monotonic() - started
        return run

    async def _session_states(self, codec: Codec, target: StreamTarget, ids: list[str]) -> dict[str, str | None]:
        """Each session's state, polled until the server closed it (or :data:`STATE_WAIT_S`)."""
        import httpx

        states: dict[str, str | None] = {sid: None for sid in ids}
        deadline = time.monotonic() + STATE_WAIT_S
        async with httpx.AsyncClient(trust_env=False) as http:
            for sid in ids:
                request = codec.get_session_request(target, SessionInfo(session_id=sid))
                if request is None:
                    continue
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        r = await http.request(request.method, target.http_base + request.path,
                                               headers=request.headers, timeout=5)
                        body = r.json() if r.status_code == 200 else None
                        states[sid] = body.get("state") if isinstance(body, dict) else f"HTTP {r.status_code}"
                    if states[sid] not in reconnect_checks.OPEN_STATES or time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(0.25)
        return states

    async def _probe(self, case: FaultCase, target: StreamTarget) -> dict[str, Any]:
        """A short clean session straight after the case: does the backend still serve?"""
        pcm = self.env.manifest.get(PROBE_FIXTURE).pcm()
        plan = _with_plan(self._plan(case, pcm), pace=0.0, max_reconnects=0, meta={"probe": True})
        outcome = await AsyncSessionClient(get_codec(self.env.protocol), target, plan).run()
        return {"completed": outcome.completed, "error": outcome.error, "close_code": outcome.close_code,
                "transcript": outcome.transcript, "session_id": outcome.session_id}

    def _fixture_label(self, case: FaultCase) -> str:
        return "+".join(case.utterances) if case.utterances else case.fixture_id

    async def _dedicated_server(self, case: FaultCase) -> Any:
        from harness.services import ReferenceServer

        server = ReferenceServer(engine="scripted", defects=self.env.defects, test_hooks=True,
                                 extra_args=list(case.server_args))
        await asyncio.to_thread(server.start)
        return server

    def _pcm(self, case: FaultCase) -> bytes:
        if case.utterances:  # one after another, each followed by a pause the endpointer hears
            gap = bytes(int(matrix.UTTERANCE_GAP_S * BYTES_PER_SECOND) // 2 * 2)
            return b"".join(self.env.manifest.get(f).pcm() + gap for f in case.utterances)
        pcm = self.env.manifest.get(case.fixture_id).pcm()
        if case.audio_s is None:
            return pcm
        n = int(case.audio_s * BYTES_PER_SECOND) // 2 * 2
        return (pcm * (n // len(pcm) + 1))[:n]  # longer than the file: loop it (the scripted engine only counts bytes)

    def _plan(self, case: FaultCase, pcm: bytes) -> SessionPlan:
        params = SessionParams(engine=case.engine, script=SCRIPT if case.engine == "scripted" else None,
                               metadata=dict(case.metadata))
        # Reconnects are bounded by time more than by count: 60 at a 1 s cap is ~45 s, past the slowest
        # restart seen (a container's server back after ~11 s on a loaded machine, where 15 ran out).
        return SessionPlan(
            pcm=pcm, params=params, chunk_ms=100, pace=case.pace, max_reconnects=60, backoff_base_s=0.1,
            backoff_cap_s=1.0, seed=case.seed, allow_remote=self.env.allow_remote, finish_timeout_s=30.0,
            meta={"fixture_id": self._fixture_label(case), "engine": case.engine},
        )

    async def _baseline_segments(self, case: FaultCase) -> list[reconnect_checks.Segment]:
        """The finals (with times) of a clean run of the case's audio on the same target, at full
        speed and with no fault (run once per audio and engine)."""
        key = ("segments", self._fixture_label(case), case.audio_s, case.engine)
        if key not in self._baselines:
            self._baselines[key] = Future()
            try:
                target = StreamTarget(self.env.http_url, self.env.api_key)
                plan = _with_plan(self._plan(case, self._pcm(case)), pace=0.0, max_reconnects=0)
                outcome = await AsyncSessionClient(get_codec(self.env.protocol), target, plan).run()
                if not outcome.ok:
                    raise RuntimeError(f"the clean baseline run of {self._fixture_label(case)} failed: {outcome.error}")
                self._baselines[key].set_result(reconnect_checks.segments(outcome.history))
            except BaseException as exc:
                self._baselines[key].set_exception(exc)
        return await asyncio.wrap_future(self._baselines[key])

    async def _baseline(self, case: FaultCase) -> list[str]:
        """The words a clean run gives: exact for the scripted engine; a clean PocketSphinx run of
        the same audio on the same target otherwise (run once per fixture and length)."""
        pcm = self._pcm(case)
        if case.engine == "scripted":
            return integrity.expected_scripted_words(SCRIPT, len(pcm), int(case.metadata.get("script_word_ms", WORD_MS)))
        key = (case.fixture_id, case.audio_s)
        if key not in self._baselines:
            self._baselines[key] = Future()
            try:
                target = StreamTarget(self.env.http_url, self.env.api_key)
                plan = _with_plan(self._plan(case, pcm), pace=0.0)
                outcome = await AsyncSessionClient(get_codec(self.env.protocol), target, plan).run()
                if not outcome.ok:
                    raise RuntimeError(f"the clean baseline run of {case.fixture_id} failed: {outcome.error}")
                from harness.checks import text as _text

                self._baselines[key].set_result(_text.words(outcome.transcript))
            except BaseException as exc:
                self._baselines[key].set_exception(exc)
        return await asyncio.wrap_future(self._baselines[key])


def _with_plan(plan: SessionPlan, **changes: Any) -> SessionPlan:
    return replace(plan, **changes)


def _stream_session_ids(codec: Codec, run: CaseRun) -> list[str]:
    """The sessions a case's connections opened: one per connection for a protocol without a
    session step (the codec collects the ids its stream reported), else the one session."""
    ids: list[str] = []
    for name in ("request_ids", "session_ids"):
        ids += [i for i in getattr(codec, name, None) or [] if isinstance(i, str)]
    if not ids and run.outcome is not None and run.outcome.session_id:
        ids.append(run.outcome.session_id)
    return list(dict.fromkeys(ids))


# --- the silent client (heartbeat) ----------------------------------------------------------
async def run_silent_client(case: FaultCase, http_url: str, api_key: str, server: Any, env: ChaosEnv) -> CaseRun:
    """A client streams a second of audio, then goes silent (no audio, no pongs) while its TCP
    connection stays open. The server must drop it within 2 x heartbeat_s and the session must
    leave ``streaming``. The session state is polled over HTTP (direct) until then."""
    import httpx

    heartbeat_s = float(case.params.get("heartbeat_s", 1))
    limit_s = 2 * heartbeat_s + SILENT_SLACK_S
    history = History(meta={"fixture_id": case.fixture_id, "fault": case.fault, "fault_params": case.params,
                            "heartbeat_s": heartbeat_s})
    run = CaseRun(case, history)
    codec = get_codec(env.protocol)
    pcm = env.manifest.get(case.fixture_id).pcm()[: BYTES_PER_SECOND]
    async with wsp.WsFaultProxy(http_url, history, allow_remote=env.allow_remote) as proxy, \
            httpx.AsyncClient(trust_env=False) as http:
        direct = StreamTarget(http_url, api_key)
        session = await create_session(codec, direct, SessionParams(engine="scripted", script=SCRIPT), history=history,
                                       http=http, allow_remote=env.allow_remote)
        target = StreamTarget(http_url, api_key, stream_base_url=proxy.ws_url)
        stream = await open_stream(codec, target, session, history=history, allow_remote=env.allow_remote)
        async with stream:
            await stream.recv_until(lambda e: isinstance(e, Ready), timeout=10)
            chunk = BYTES_PER_SECOND // 10
            for offset in range(0, len(pcm), chunk):
                await stream.send_audio(offset, pcm[offset:offset + chunk])
                await asyncio.sleep(0.1)
            await stream.drain(0.3)
            fault = case.steps[0].fresh().fault  # ws_no_pong: the client stops answering, TCP stays open
            await fault.start(FaultContext([history], {"wsproxy": proxy}))
            rule = fault.rule
            started = rule.windows[0].start_ns if rule.windows else time.monotonic_ns()
            states: list[tuple[float, str]] = []
            left_streaming_ms = closed_ms = None
            deadline = time.monotonic() + limit_s + 3.0  # look a little past the limit, to say by how much
            while time.monotonic() < deadline and (left_streaming_ms is None or closed_ms is None):
                if stream.closed:
                    await asyncio.sleep(0.1)
                elif closed_ms is None and any(isinstance(e, Closed) for e in await stream.drain(0.1)):
                    closed_ms = ns_to_ms(time.monotonic_ns() - started)
                r = await http.get(f"{http_url}/v1/sessions/{session.session_id}",
                                   headers={"Authorization": f"Bearer {api_key}"}, timeout=5)
                state = r.json().get("state") if r.status_code == 200 else f"HTTP {r.status_code}"
                elapsed = ns_to_ms(time.monotonic_ns() - started)
                if not states or states[-1][1] != state:
                    states.append((elapsed, state))
                    history.add("note", text=f"session state {state!r} at +{elapsed:.0f} ms after the client went silent",
                                state=state)
                if left_streaming_ms is None and state != "streaming":
                    left_streaming_ms = elapsed
            await fault.stop()
        run.extra = {"heartbeat_s": heartbeat_s, "observed_ms": ns_to_ms(time.monotonic_ns() - started),
                     "limit_ms": limit_s * 1000, "closed_ms": closed_ms,
                     "left_streaming_ms": left_streaming_ms, "states": states, "pongs_withheld": proxy.pongs_withheld,
                     "server_close_code": rule.windows[0].params.get("server_close_code") if rule.windows else None}
        with contextlib.suppress(httpx.HTTPError):  # leave nothing open on the server
            await http.post(f"{http_url}/v1/sessions/{session.session_id}/finalize",
                            headers={"Authorization": f"Bearer {api_key}"}, timeout=5)
    return run


__all__ = ["CaseRun", "ChaosEnv", "MatrixRunner", "run_silent_client"]
