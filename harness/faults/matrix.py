"""The chaos fault matrix: each case streams a fixture through one fault, then checks what came out.

A case is data (:class:`FaultCase`): where the fault sits (``toxiproxy`` in front of the stream,
the WebSocket-aware ``wsproxy``, the server ``process``, or ``none`` for the control run), what it
does (an ``inject`` coroutine, the nemesis), and the session it hits (fixture, length, engine,
pace). :class:`MatrixRunner` runs many cases side by side on one event loop in a background
thread, each on its own proxy (process faults on their own server), so the CI profile stays short;
:func:`case_verdicts` turns a finished case into verdicts with the pure checks of
``harness.checks``.

The stream goes through the fault, HTTP goes direct. The scripted engine makes integrity exact
(every byte maps to one known word); with PocketSphinx the baseline is a clean run of the same
audio on the same target.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from harness.checks import integrity, latency, lifecycle, recovery
from harness.checks import session as session_checks
from harness.checks._common import in_fault, ns_to_ms, session_label
from harness.checks.latency import final_latency_samples
from harness.checks.verdict import Status, Verdict
from harness.drivers.asyncio_driver import AsyncSessionClient, create_session, open_stream
from harness.drivers.session import SessionOutcome, SessionPlan
from harness.faults import process as procfaults
from harness.faults import toxiproxy as tp
from harness.faults import wsproxy as wsp
from harness.history import FaultWindow, History
from harness.protocols.base import BYTES_PER_SECOND, SessionParams, StreamTarget
from harness.protocols.events import Closed, Ready
from harness.protocols.registry import capabilities_of, get_codec

# Distinct words, so a lost or doubled byte range names itself in a failure message.
SCRIPT = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
)
WORD_MS = 300  # the scripted engine's default word length
DEFAULT_FIXTURE = "medical-01-rms"
LONG_FIXTURE = "conversation-meeting"


class CaseSkipped(Exception):
    """This case cannot run against this target (the reason says why); the test skips it."""


class SessionEnded(Exception):
    """The session ended before the point where the fault was to be injected."""


# --- cases -----------------------------------------------------------------------------------
Inject = Callable[["CaseContext"], Awaitable[None]]


@dataclass(frozen=True)
class FaultCase:
    """One row of the matrix. ``params`` is what the report shows as ``fault_params``."""

    id: str
    fault: str
    layer: str  # none | toxiproxy | wsproxy | process
    params: dict[str, Any] = field(default_factory=dict)
    inject: Inject | None = None
    fixture_id: str = DEFAULT_FIXTURE
    audio_s: float | None = 5.1  # None: the whole fixture; 5.1 s = 17 words, the last segment open at finalize
    engine: str = "scripted"
    pace: float = 1.0
    seed: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)  # session metadata (scripted engine knobs)
    server_args: tuple[str, ...] = ()  # a dedicated server's extra arguments
    own_server: bool = False  # needs a dedicated server (process faults, small heartbeat)
    catches: tuple[str, ...] = ()  # planted defects this case catches (selftest marker)
    kind: str = "stream"  # stream: a full session through the fault; silent_client: see run_silent_client
    trust_latency_ms: float | None = None  # check that the harness measures this injected latency within 10 %


@dataclass
class CaseContext:
    """What an inject coroutine works with while the session runs."""

    case: FaultCase
    history: History
    done: asyncio.Event
    toxi: tp.FaultProxy | None = None
    ws: wsp.WsFaultProxy | None = None
    server: Any = None  # harness.services.ReferenceServer of a process case
    audio_bytes: int = 0
    _seen: int = 0
    _through: int = 0

    def _sent_through(self) -> int:
        records = self.history.records
        for r in records[self._seen:]:
            if r.kind == "audio_sent":
                self._through = max(self._through, r.data["offset"] + r.data["length"])
        self._seen = len(records)
        return self._through

    async def sent(self, seconds: float, timeout_s: float = 120.0) -> None:
        """Wait until the audio through ``seconds`` has been sent; SessionEnded if it never is."""
        target = min(int(seconds * BYTES_PER_SECOND), self.audio_bytes)
        deadline = time.monotonic() + timeout_s
        while self._sent_through() < target:
            if self.done.is_set():
                raise SessionEnded(f"the session ended before {seconds:g} s of audio were sent")
            if time.monotonic() > deadline:
                raise SessionEnded(f"{seconds:g} s of audio not sent within {timeout_s:g} s")
            await asyncio.sleep(0.01)

    async def before_end(self, lead_s: float) -> None:
        """Wait until the audio is ``lead_s`` from its end (just before finalize goes out)."""
        await self.sent(max(0.0, self.audio_bytes / BYTES_PER_SECOND - lead_s))

    async def hold(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the session ends first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), seconds)


# --- nemeses ---------------------------------------------------------------------------------
def toxic_at(toxics: Sequence[tp.Toxic], at_s: float, duration_s: float) -> Inject:
    """Toxics on the stream from ``at_s`` seconds of audio sent, for ``duration_s``."""

    async def inject(ctx: CaseContext) -> None:
        await ctx.sent(at_s)
        assert ctx.toxi is not None
        async with ctx.toxi.toxic(list(toxics), ctx.history):
            await asyncio.sleep(duration_s)

    return inject


def toxic_until_done(toxics: Sequence[tp.Toxic], lead_s: float | None = None, at_s: float = 0.0,
                     max_s: float = 60.0) -> Inject:
    """Toxics from ``at_s`` (or ``lead_s`` before the audio ends) until the session is over."""

    async def inject(ctx: CaseContext) -> None:
        await (ctx.before_end(lead_s) if lead_s is not None else ctx.sent(at_s))
        assert ctx.toxi is not None
        async with ctx.toxi.toxic(list(toxics), ctx.history):
            await ctx.hold(max_s)

    return inject


def proxy_down_at(at_s: float, duration_s: float) -> Inject:
    async def inject(ctx: CaseContext) -> None:
        await ctx.sent(at_s)
        assert ctx.toxi is not None
        await ctx.toxi.take_down(duration_s, ctx.history)

    return inject


def rule_from_start(make: Callable[[], wsp.Rule]) -> Inject:
    """A wsproxy rule armed before the session starts (its window opens when it first acts)."""

    async def inject(ctx: CaseContext) -> None:
        assert ctx.ws is not None
        async with ctx.ws.rule(make()):
            await ctx.done.wait()

    return inject


def rule_at(make: Callable[[], wsp.Rule], at_s: float) -> Inject:
    async def inject(ctx: CaseContext) -> None:
        await ctx.sent(at_s)
        assert ctx.ws is not None
        async with ctx.ws.rule(make()):
            await ctx.done.wait()

    return inject


def kill9_at(at_s: float, down_s: float) -> Inject:
    async def inject(ctx: CaseContext) -> None:
        await ctx.sent(at_s)
        await procfaults.kill_and_restart(ctx.server, ctx.history, down_s=down_s)

    return inject


def freeze_at(at_s: float, duration_s: float) -> Inject:
    async def inject(ctx: CaseContext) -> None:
        await ctx.sent(at_s)
        await procfaults.freeze(ctx.server, duration_s, ctx.history)

    return inject


def sigterm_at(at_s: float, down_s: float = 0.0) -> Inject:
    async def inject(ctx: CaseContext) -> None:
        await ctx.sent(at_s)
        await procfaults.graceful_restart(ctx.server, ctx.history, down_s=down_s)

    return inject


# --- the matrix ------------------------------------------------------------------------------
DOWN, UP = tp.DOWNSTREAM, tp.UPSTREAM
RESUME = ("no-resume",)


def _base_cases(long: bool, seed: int = 1) -> list[FaultCase]:
    """The fault matrix; ``long`` stretches the faults (nightly)."""
    k = 2.0 if long else 1.0
    blackhole_s, down_s, freeze_s = (8.0, 5.0, 10.0) if long else (3.0, 2.0, 5.0)
    return [
        FaultCase("control", "none", "none", {}, None, seed=seed, catches=("final-lost-on-close",)),
        FaultCase("latency-down-jitter", "latency", "toxiproxy", {"stream": DOWN, "latency_ms": 300, "jitter_ms": 50},
                  toxic_at([tp.latency(300, 50)], 1.0, 2.5 * k), seed=seed),
        FaultCase("latency-up", "latency", "toxiproxy", {"stream": UP, "latency_ms": 300},
                  toxic_at([tp.latency(300, 0, UP)], 1.0, 2.5 * k), seed=seed),
        FaultCase("bandwidth-below-audio-rate", "bandwidth", "toxiproxy", {"stream": UP, "rate_kb_s": 16},
                  toxic_at([tp.bandwidth(16, UP)], 1.0, 2.0 * k), seed=seed),
        FaultCase("slicer", "slicer", "toxiproxy", {"stream": "both", "average_size": 64, "size_variation": 32, "delay_us": 200},
                  toxic_until_done([tp.slicer(64, 32, 200, DOWN), tp.slicer(64, 32, 200, UP)]), seed=seed),
        FaultCase("reset-peer-mid-stream", "reset_peer", "toxiproxy", {"stream": UP, "timeout_ms": 0, "window_s": 0.3},
                  toxic_at([tp.reset_peer(0, UP)], 2.0, 0.3), seed=seed, catches=RESUME),
        FaultCase("blackhole", "timeout", "toxiproxy", {"stream": "both", "timeout_ms": 0, "duration_s": blackhole_s},
                  toxic_at([tp.timeout(0, DOWN), tp.timeout(0, UP)], 1.5, blackhole_s), seed=seed),
        FaultCase("proxy-down", "down", "toxiproxy", {"duration_s": down_s}, proxy_down_at(2.0, down_s), seed=seed,
                  catches=RESUME),
        FaultCase("limit-data", "limit_data", "toxiproxy", {"stream": UP, "bytes": 48000, "duration_s": 3.0 * k},
                  toxic_at([tp.limit_data(48000, UP)], 1.0, 3.0 * k), seed=seed, catches=RESUME),
        FaultCase("slow-close-on-finalize", "slow_close", "toxiproxy", {"stream": DOWN, "delay_ms": 2000},
                  toxic_until_done([tp.slow_close(2000, DOWN)], lead_s=0.3, max_s=15), seed=seed,
                  catches=("final-lost-on-close",)),
        FaultCase("latency-spike-on-finalize", "latency", "toxiproxy", {"stream": "both", "latency_ms": 1000, "at": "finalize"},
                  toxic_until_done([tp.latency(1000, 0, DOWN), tp.latency(1000, 0, UP)], lead_s=0.2, max_s=2.5 * k),
                  seed=seed, catches=("final-lost-on-close",)),
        # The second final (segment 1): the third, arriving before finalize, reveals the hole and the
        # client reconnects for the replay. A final lost after finalize cannot be replayed (4410).
        FaultCase("ws-drop-final-2", "ws_drop", "wsproxy", {"stream": DOWN, "message": "final", "nth": 2},
                  rule_from_start(lambda: wsp.Drop(wsp.DOWNSTREAM, wsp.Match(kind="final", nth=2))), seed=seed,
                  catches=RESUME),
        FaultCase("ws-duplicate-audio-frame", "ws_duplicate", "wsproxy", {"stream": UP, "message": "audio", "nth": 20},
                  rule_from_start(lambda: wsp.Duplicate(wsp.UPSTREAM, wsp.Match(kind="binary", nth=20))), seed=seed),
        FaultCase("ws-hold-acks", "ws_hold", "wsproxy", {"stream": DOWN, "message": "ack", "duration_s": 2.0 * k},
                  rule_at(lambda: wsp.HoldBack(wsp.DOWNSTREAM, wsp.Match(kind="ack", count=None), 2.0 * k), 1.0),
                  seed=seed),
        FaultCase("ws-reorder-audio", "ws_reorder", "wsproxy", {"stream": UP, "message": "audio", "nth": 15, "after": 1},
                  rule_from_start(lambda: wsp.Reorder(wsp.UPSTREAM, wsp.Match(kind="binary", nth=15), after=1)),
                  seed=seed),
        FaultCase("ws-delay-final", "ws_delay", "wsproxy", {"stream": DOWN, "message": "final", "nth": 1, "delay_ms": 1500},
                  rule_from_start(lambda: wsp.Delay(wsp.DOWNSTREAM, wsp.Match(kind="final", nth=1), 1.5)), seed=seed),
        FaultCase("ws-close-1011", "ws_close", "wsproxy", {"code": 1011, "after": "ack 8"},
                  rule_from_start(lambda: wsp.CloseWith(1011, "injected internal error", wsp.DOWNSTREAM,
                                                        wsp.Match(kind="ack", nth=8))),
                  seed=seed, catches=RESUME),
        FaultCase("ws-close-1001", "ws_close", "wsproxy", {"code": 1001, "after": "ack 8"},
                  rule_from_start(lambda: wsp.CloseWith(1001, "injected going away", wsp.DOWNSTREAM,
                                                        wsp.Match(kind="ack", nth=8))),
                  seed=seed, catches=RESUME),
        FaultCase("ws-silent-client", "ws_no_pong", "wsproxy", {"heartbeat_s": 1, "silence_client": True},
                  kind="silent_client", own_server=True, server_args=("--heartbeat-s", "1", "--idle-timeout-s", "60"),
                  seed=seed, catches=("no-heartbeat",)),
        FaultCase("kill9-restart", "kill9", "process", {"signal": "SIGKILL", "down_s": 0.5},
                  kill9_at(2.0, 0.5), own_server=True, seed=seed),
        FaultCase("frozen", "freeze", "process", {"signal": "SIGSTOP", "duration_s": freeze_s},
                  freeze_at(1.5, freeze_s), own_server=True, seed=seed),
        FaultCase("graceful-restart", "sigterm_restart", "process", {"signal": "SIGTERM", "close": 1001},
                  sigterm_at(2.0), own_server=True, seed=seed),
        FaultCase("latency-measured", "latency", "toxiproxy", {"stream": DOWN, "latency_ms": 300, "jitter_ms": 0},
                  toxic_at([tp.latency(300, 0)], 1.5, 3.0), audio_s=6.0, metadata={"script_segment_words": 1},
                  trust_latency_ms=300.0, seed=seed),
    ]


def cases(profile: str) -> list[FaultCase]:
    """The CI matrix (scripted engine, short fixture, 1x pace), or the nightly one: the matrix
    with longer faults over three seeds, on the long conversation, and with PocketSphinx."""
    if profile == "ci":
        base = _base_cases(long=False)
        # One real-ASR session: PocketSphinx at real time against its own clean run of the same audio.
        return base[:1] + [_with(base[0], id="control-pocketsphinx", engine="pocketsphinx", audio_s=None, catches=())] + base[1:]
    if profile != "nightly":
        raise ValueError(f"unknown profile {profile!r}; expected 'ci' or 'nightly'")
    out: list[FaultCase] = []
    for seed in (1, 2, 3):
        out += [_with(c, id=f"{c.id}-s{seed}") for c in _base_cases(long=True, seed=seed)]
    by_id = {c.id: c for c in _base_cases(long=True)}
    for cid in ("control", "latency-down-jitter", "blackhole", "proxy-down", "ws-drop-final-2", "kill9-restart",
                "graceful-restart"):
        out.append(_with(by_id[cid], id=f"{cid}-conversation", fixture_id=LONG_FIXTURE, audio_s=None))
    for cid in ("control", "latency-down-jitter", "latency-up", "slicer", "bandwidth-below-audio-rate",
                "ws-hold-acks", "ws-delay-final"):
        out.append(_with(by_id[cid], id=f"{cid}-pocketsphinx", engine="pocketsphinx", audio_s=None, catches=()))
    return out


def _with(case: FaultCase, **changes: Any) -> FaultCase:
    from dataclasses import replace

    return replace(case, **changes)


# --- running ---------------------------------------------------------------------------------
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
    stagger_s: float = 0.4  # between the first case starts


@dataclass
class CaseRun:
    """A finished case: its history and outcome (verdicts are computed by :func:`case_verdicts`)."""

    case: FaultCase
    history: History
    outcome: SessionOutcome | None = None
    baseline: list[str] | None = None
    error: str | None = None  # the harness broke (not a verdict about the backend)
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
        self._baselines: dict[tuple[str, float | None], Future[list[str]]] = {}

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
        lab: tp.ToxiproxyLab | None = None
        if self.env.toxiproxy_url:
            lab = tp.ToxiproxyLab(self.env.toxiproxy_url, allow_remote=self.env.allow_remote)
        try:
            tasks = [asyncio.create_task(self._one(c, slots, servers, lab, i * self.env.stagger_s))
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
                   lab: tp.ToxiproxyLab | None, delay_s: float) -> None:
        future = self.futures[case.id]
        try:
            skip = self._skip_reason(case)
            if skip:
                raise CaseSkipped(skip)
            # Staggered starts: sessions created all at once on two cores measure the herd, not the backend.
            await asyncio.sleep(min(delay_s, self.env.stagger_s * self.env.max_parallel))
            async with slots:
                if case.own_server:
                    async with servers:
                        run = await self._run_case(case, lab)
                else:
                    run = await self._run_case(case, lab)
            future.set_result(run)
        except BaseException as exc:  # the test re-raises it: a harness error, never a pass
            if not future.done():
                future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _skip_reason(self, case: FaultCase) -> str:
        lacking = [c for c in ("offsets", "replay") if c not in capabilities_of(self.env.protocol)]
        if lacking:
            return (f"the chaos matrix tests resume (offsets and replay of finals); --protocol "
                    f"{self.env.protocol} lacks {', '.join(lacking)}")
        if case.own_server and not self.env.embedded:
            return "needs a server the harness starts itself (process faults, small heartbeat); --target given"
        if case.layer == "toxiproxy" and not self.env.toxiproxy_url:
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
            baseline = await self._baseline(case)
            fixture = self.env.manifest.get(case.fixture_id)
            history = History(meta={"fixture_id": case.fixture_id, "fault": case.fault, "fault_params": case.params,
                                    "baseline_text": " ".join(baseline), "speech_onset_ms": fixture.speech_onset_ms})
            done = asyncio.Event()
            pcm = self._pcm(case)
            ctx = CaseContext(case, history, done, server=server, audio_bytes=len(pcm))
            stream_base = None
            if case.layer == "toxiproxy":
                assert lab is not None
                ctx.toxi = await lab.proxy(http_url)
                stack.push_async_callback(ctx.toxi.close)
                stream_base = ctx.toxi.ws_url
            elif case.layer == "wsproxy":
                ctx.ws = await stack.enter_async_context(
                    wsp.WsFaultProxy(http_url, history, allow_remote=self.env.allow_remote))
                stream_base = ctx.ws.ws_url
            target = StreamTarget(http_url, api_key, stream_base_url=stream_base)
            run = CaseRun(case, history, baseline=baseline)
            client = AsyncSessionClient(get_codec(self.env.protocol), target, self._plan(case, pcm), history)
            session = asyncio.create_task(client.run())
            nemesis = asyncio.create_task(case.inject(ctx)) if case.inject else None
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
            if ctx.ws is not None and ctx.ws.errors and run.error is None:
                run.error = "the WebSocket fault proxy failed: " + "; ".join(ctx.ws.errors[:3])
            if case.trust_latency_ms is not None:
                run.extra["latency_windows"] = [w for w in history.faults if w.end_ns is not None]
            run.duration_s = time.monotonic() - started
        return run

    async def _dedicated_server(self, case: FaultCase) -> Any:
        from harness.services import ReferenceServer

        server = ReferenceServer(engine="scripted", defects=self.env.defects, test_hooks=True,
                                 extra_args=list(case.server_args))
        await asyncio.to_thread(server.start)
        return server

    def _pcm(self, case: FaultCase) -> bytes:
        pcm = self.env.manifest.get(case.fixture_id).pcm()
        if case.audio_s is None:
            return pcm
        n = int(case.audio_s * BYTES_PER_SECOND) // 2 * 2
        return (pcm * (n // len(pcm) + 1))[:n]  # longer than the file: loop it (the scripted engine only counts bytes)

    def _plan(self, case: FaultCase, pcm: bytes) -> SessionPlan:
        params = SessionParams(engine=case.engine, script=SCRIPT if case.engine == "scripted" else None,
                               metadata=dict(case.metadata))
        return SessionPlan(
            pcm=pcm, params=params, chunk_ms=100, pace=case.pace, max_reconnects=15, backoff_base_s=0.1,
            backoff_cap_s=1.0, seed=case.seed, allow_remote=self.env.allow_remote, finish_timeout_s=30.0,
            meta={"fixture_id": case.fixture_id, "engine": case.engine},
        )

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
    from dataclasses import replace

    return replace(plan, **changes)


# --- the silent client (heartbeat) ----------------------------------------------------------
SILENT_SLACK_S = 2.0  # on top of 2 x heartbeat_s: scheduling on a busy two-core machine


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
            rule = proxy.add(wsp.StopAnsweringPings(silence_client=True))
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
            proxy.remove(rule)
        run.extra = {"heartbeat_s": heartbeat_s, "observed_ms": ns_to_ms(time.monotonic_ns() - started),
                     "limit_ms": limit_s * 1000, "closed_ms": closed_ms,
                     "left_streaming_ms": left_streaming_ms, "states": states, "pongs_withheld": proxy.pongs_withheld,
                     "server_close_code": rule.windows[0].params.get("server_close_code") if rule.windows else None}
        with contextlib.suppress(httpx.HTTPError):  # leave nothing open on the server
            await http.post(f"{http_url}/v1/sessions/{session.session_id}/finalize",
                            headers={"Authorization": f"Bearer {api_key}"}, timeout=5)
    return run


# --- checking --------------------------------------------------------------------------------
def case_verdicts(run: CaseRun) -> list[Verdict]:
    """Everything the matrix asks of a finished case (pure: reads the history and outcome)."""
    if run.case.kind == "silent_client":
        return silent_client_verdicts(run)
    h, out, case = run.history, run.outcome, run.case
    who = session_label(h)
    verdicts: list[Verdict] = []
    assert out is not None
    if case.inject is not None:
        ended = [w for w in h.faults if w.end_ns is not None]
        if run.injected_error or not ended:
            verdicts.append(Verdict("chaos.fault_injected", Status.UNKNOWN,
                                    f"{who}: the {case.fault} fault never took effect: {run.injected_error or 'no window recorded'}"))
        else:
            verdicts.append(Verdict("chaos.fault_injected", Status.PASS,
                                    f"{who}: {len(ended)} {case.fault} window(s)",
                                    evidence={"windows": [_window_row(h, w) for w in ended]}))
    completed_ok = out.completed and out.error is None
    verdicts.append(Verdict(
        "chaos.session_completed", Status.PASS if completed_ok else Status.FAIL,
        f"{who}: completed after {out.reconnects} reconnect(s)" if completed_ok else
        f"{who}: did not complete under {case.fault}: {out.error or f'closed {out.close_code}'}",
        evidence={"reconnects": out.reconnects, "close_code": out.close_code, "state": out.state},
    ))
    baseline = run.baseline
    verdicts += [
        integrity.completeness(h, baseline),
        integrity.duplicates(h, baseline),
        integrity.segments(h),
        integrity.ordering(h),
        integrity.replays(h),
        integrity.audio_gaps(h),
        lifecycle.pipeline_events(h),
        _pipeline_once_on_server(h, out),
    ]
    verdicts.append(_fault_cost(h))
    verdicts += steady_state_latencies(h)
    verdicts.append(session_checks.session_success(h, verdicts))
    if case.trust_latency_ms is not None:
        verdicts.append(latency_trust(h, case.trust_latency_ms))
    return verdicts


def steady_state_latencies(h: History) -> list[Verdict]:
    """The fault-free latencies of a chaos session, for the run's SLOs: session creation, connects
    and finals outside every fault window, the first partial (real ASR only: the scripted engine's
    timing is its script's) and the pipeline when no fault touched it. A fault's own cost is in
    ``recovery_ms`` and ``added_latency_ms``. Only verdicts with samples are returned: a latency
    a fault made unmeasurable is not a reason to call the session unknown."""
    out = [latency.session_creation(h), latency.final_latency(h)]
    clean = [s for s in latency.connect_samples(h) if not in_fault(h, s.t_ns - int(s.ms * 1e6), s.t_ns)]
    if clean:
        out.append(Verdict("latency.connect", Status.PASS,
                           f"{session_label(h)}: {len(clean)} connect(s) outside fault windows, worst "
                           f"{max(s.ms for s in clean):.0f} ms", {"connect_ms": [s.ms for s in clean]}))
    if h.meta.get("engine") != "scripted":
        sample, _ = latency.first_partial_sample(h)
        if sample is not None and not in_fault(h, sample.t_ns - int(sample.ms * 1e6), sample.t_ns):
            out.append(latency.first_partial(h))
    pipeline = latency.pipeline_latency(h)
    t_f = latency.finalize_time(h)
    events = h.events("pipeline_event")
    if t_f is not None and events and not in_fault(h, t_f, events[-1][0]):
        out.append(pipeline)
    return [v for v in out if v.status is Status.PASS]


def _window_row(h: History, w: FaultWindow) -> dict[str, Any]:
    return {"kind": w.kind, "target": w.target, "params": w.params, "start_ms": h.ms_since_t0(w.start_ns),
            "end_ms": h.ms_since_t0(w.end_ns) if w.end_ns is not None else None}


def _pipeline_once_on_server(h: History, out: SessionOutcome) -> Verdict:
    """The server's own record (GET /v1/sessions/{id} ``events``): each pipeline event once, in order."""
    who = session_label(h)
    body = out.final_state
    if not isinstance(body, dict):
        return Verdict("chaos.pipeline_once", Status.UNKNOWN, f"{who}: no final session state to read the pipeline from")
    names = [n for n in lifecycle.body_events(body) if n in lifecycle.KNOWN_EVENTS]
    problems = lifecycle.sequence_problems(names)
    if body.get("state") != "completed":
        problems.append(f"state is {body.get('state')!r}, not 'completed'")
    if problems:
        return Verdict("chaos.pipeline_once", Status.FAIL, f"{who}: the server's pipeline record is wrong: "
                       + "; ".join(problems[:4]), evidence={"events": names})
    return Verdict("chaos.pipeline_once", Status.PASS, f"{who}: the pipeline ran exactly once ({len(names)} events)",
                   evidence={"events": names})


def _fault_cost(h: History) -> Verdict:
    """recovery_ms and added_latency_ms as measured, whether or not they apply to this fault (a
    fault after the last audio has no ack to recover to): the report's chaos matrix reads them.
    A session that sent audio after a fault and never got an ack again fails."""
    rec = recovery.recovery(h) if h.faults else None
    added = recovery.added_latency(h) if h.faults else None
    metrics = {
        "recovery_ms": rec.metrics.get("recovery_ms", []) if rec else [],
        "added_latency_ms": added.metrics.get("added_latency_ms", []) if added and added.passed else [],
    }
    who = session_label(h)
    if rec is not None and rec.status is Status.FAIL:
        return Verdict("chaos.recovery", Status.FAIL, rec.message, metrics, rec.evidence)
    parts = []
    if metrics["recovery_ms"]:
        parts.append(f"recovered within {max(metrics['recovery_ms']):.0f} ms")
    if metrics["added_latency_ms"]:
        parts.append(f"added up to {max(metrics['added_latency_ms']):.0f} ms to finals")
    evidence = {"recovery": rec.evidence if rec else {}, "added_latency": added.evidence if added else {}}
    return Verdict("chaos.recovery", Status.PASS, f"{who}: " + ("; ".join(parts) or "nothing to recover from"),
                   metrics, evidence)


def latency_trust(h: History, injected_ms: float, tolerance: float = 0.10) -> Verdict:
    """The harness measures a known injected latency within ``tolerance``: median final latency of
    segments sent and received inside the window, minus the median outside any window."""
    who = session_label(h)
    windows = [w for w in h.faults if w.end_ns is not None]
    inside, clean = [], []
    for sample, faulted in final_latency_samples(h):
        sent_ns = sample.t_ns - int(sample.ms * 1e6)
        if not faulted:
            clean.append(sample.ms)
        elif any(w.start_ns <= sent_ns and sample.t_ns <= w.end_ns for w in windows):  # type: ignore[operator]
            inside.append(sample.ms)
    if len(inside) < 3 or len(clean) < 3:
        return Verdict("chaos.latency_measured", Status.UNKNOWN,
                       f"{who}: too few finals to measure ({len(inside)} inside the window, {len(clean)} outside)")
    measured = statistics.median(inside) - statistics.median(clean)
    error = abs(measured - injected_ms) / injected_ms
    metrics = {"added_latency_ms": [round(measured, 3)]}
    evidence = {"inside_ms": inside, "clean_ms": clean, "injected_ms": injected_ms, "error": round(error, 4)}
    if error > tolerance:
        return Verdict("chaos.latency_measured", Status.FAIL,
                       f"{who}: injected {injected_ms:.0f} ms of downstream latency, measured {measured:.0f} ms "
                       f"({error:.0%} off, tolerance {tolerance:.0%})", metrics, evidence)
    return Verdict("chaos.latency_measured", Status.PASS,
                   f"{who}: injected {injected_ms:.0f} ms, measured {measured:.0f} ms ({error:.1%} off) over "
                   f"{len(inside)} finals", metrics, evidence)


def silent_client_verdicts(run: CaseRun) -> list[Verdict]:
    h, x = run.history, run.extra
    who = session_label(h)
    limit = x["limit_ms"]
    hb = x["heartbeat_s"]
    never_pinged = x["pongs_withheld"] == 0
    why = " (no ping arrived to be left unanswered: the server never pinged)" if never_pinged else ""
    out = []
    closed = x["closed_ms"]
    if closed is None or closed > limit:
        seen = f"not dropped within {x['observed_ms']:.0f} ms" if closed is None else f"dropped only after {closed:.0f} ms"
        out.append(Verdict("chaos.dead_client_dropped", Status.FAIL,
                           f"{who}: a client that stopped answering pings was {seen}; limit 2 x heartbeat "
                           f"({hb:g} s) + {SILENT_SLACK_S:g} s = {limit:.0f} ms{why}", {}, x))
    else:
        out.append(Verdict("chaos.dead_client_dropped", Status.PASS,
                           f"{who}: the silent client was dropped after {closed:.0f} ms (close "
                           f"{x['server_close_code']}, limit {limit:.0f} ms)", {}, x))
    left = x["left_streaming_ms"]
    if left is None or left > limit:
        seen = (f"'streaming' for all of the {x['observed_ms']:.0f} ms observed" if left is None
                else f"'streaming' for {left:.0f} ms")
        out.append(Verdict("chaos.dead_client_state", Status.FAIL,
                           f"{who}: the session of a dead client stayed {seen} (limit {limit:.0f} ms); "
                           f"states: {x['states']}{why}", {}, x))
    else:
        out.append(Verdict("chaos.dead_client_state", Status.PASS,
                           f"{who}: the session left 'streaming' after {left:.0f} ms ({x['states'][-1][1]!r})", {}, x))
    return out


__all__ = ["CaseRun", "CaseSkipped", "ChaosEnv", "FaultCase", "MatrixRunner", "case_verdicts", "cases"]
