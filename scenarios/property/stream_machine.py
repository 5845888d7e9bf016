"""A hypothesis state machine that drives one scripted-engine session per example.

Each example creates a fresh session and races its start (one first frame, a burst of first
frames, or two connections sending their first frame at once), then runs random steps: new audio
(random even sizes, sometimes overlapping what was sent), a resend of old audio (a duplicate),
audio that skips ahead (the server must answer ``audio_gap`` and the client resends), an abrupt
disconnect and a resume with ``last_segment_id``, and keepalives. Teardown ends every example
with a finalize (over the stream, over HTTP, or both at once; drawn at the start) and the end
checks: the transcript, the pipeline's events, the stored session. The model
(``property_model.StreamModel``) says what the server must have done; the invariant raises on its
first problem, so hypothesis shrinks to the shortest sequence that breaks the server.

Blocking driver (``harness.drivers.sync_driver``): hypothesis runs rules synchronously, and the
sync client reads frames in the background, so a step is a plain sequence of sends and reads.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from property_model import Frame, StreamModel, even
from websockets.exceptions import ConnectionClosed

from harness.checks import integrity, latency
from harness.checks.lifecycle import body_events
from harness.drivers._common import StreamConnectError
from harness.drivers.sync_driver import SyncStream, create_session, http_request, open_stream
from harness.history import History
from harness.protocols.base import HttpRequest, SessionInfo, SessionParams, StreamTarget
from harness.protocols.events import Ack, Closed, Error, Event, Final, PipelineEvent, Ready
from harness.protocols.reference import ReferenceCodec

SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
WORD_MS = 100  # 3,200 bytes a word: a few kilobytes of audio already make several segments
SEGMENT_WORDS = 3
PCM = bytes(range(256)) * 4096  # 1 MiB; a resent byte is the same byte as the first time
MAX_FRAME = 12_800  # largest new audio in one step (400 ms)
STEP_TIMEOUT_S = 5.0  # the longest any one wait may take (an ack, a ready, a gap error)
FINALIZE_TIMEOUT_S = 10.0  # the scripted pipeline takes tens of milliseconds
SETTLE_S = 0.06  # longer than the server's 20 ms ack interval: the ack after a frame has arrived

START_MODES = ("burst", "one", "two_connections")  # burst first: the simplest example races
# The end of every example: finalize over the stream, over HTTP, or both at once (exactly one pipeline).
FINALIZE_MODES = ("stream", "stream+http", "http")
SIZES = st.integers(1, MAX_FRAME // 2).map(lambda n: 2 * n)
SMALL = st.integers(0, 1600).map(lambda n: 2 * n)


@dataclass
class MachineContext:
    """What every example of one run shares: the target, an HTTP client, and the record of the
    run (examples, steps, and the last example that failed with its history)."""

    target: StreamTarget
    http: httpx.Client
    budget_s: float = 75.0  # wall clock for the whole run, shrinking included
    script: str = SCRIPT
    word_ms: int = WORD_MS
    segment_words: int = SEGMENT_WORDS
    examples: int = 0
    steps: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0
    last_history: History | None = None
    failure: Failure | None = None  # the last example that failed (hypothesis ends on the shrunk one)
    samples: dict[str, list[float]] = field(default_factory=dict)  # SLO metric samples, every example
    started: float = field(default_factory=time.monotonic)
    out_of_time: bool = False  # set once: every later example is a no-op, so hypothesis ends quickly

    def spent(self) -> bool:
        """True once the budget is used up. Hypothesis has no budget of its own short of minutes of
        shrinking, and a backend that hangs costs a step timeout per example: the examples after
        the budget do nothing and pass, and the run reports what it found until then."""
        if not self.out_of_time and time.monotonic() - self.started > self.budget_s:
            self.out_of_time = True
        return self.out_of_time

    def record_example(self, history: History, model: StreamModel, ok: bool, finished: bool) -> None:
        """Per-example samples under the shared metric names (harness.checks.metrics): what
        creating and connecting cost, whether the session succeeded, and, for a session that got to
        its end checks, how long its pipeline took and the words lost or doubled and segments lost."""
        add = lambda name, values: self.samples.setdefault(name, []).extend(values)  # noqa: E731
        add("session_create_ms", [s.ms for s in latency.session_create_samples(history)])
        add("connect_ms", [s.ms for s in latency.connect_samples(history)])
        add("session_success", [1 if ok else 0])
        if finished:
            baseline = model.expected_words()
            for v in (integrity.completeness(history, baseline), integrity.duplicates(history, baseline),
                      integrity.segments(history), latency.pipeline_latency(history)):
                for name in ("lost_words", "duplicated_words", "lost_segments", "pipeline_ms"):
                    value = v.metrics.get(name)
                    if value is not None:
                        add(name, value if isinstance(value, list) else [value])


@dataclass(frozen=True)
class Failure:
    history: History
    symptom: str
    steps: tuple[str, ...]  # the example's steps as calls, for when hypothesis cannot replay it
    assertion: bool = True  # False: an exception, not a symptom (the target could not be driven)


def guarded(step: Callable[..., None]) -> Callable[..., None]:
    """Mark the example failed when a step raises, so teardown does not pile a second error on it."""

    @functools.wraps(step)
    def run(self: StreamMachine, **kwargs: Any) -> None:
        if self.idle:
            return
        self.calls.append(f"{step.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")
        try:
            step(self, **kwargs)
        except BaseException as exc:
            if not self.failed:
                assertion = isinstance(exc, AssertionError)
                self._record_failure(str(exc) if assertion else f"{type(exc).__name__}: {exc}", assertion)
            raise

    return run


class StreamMachine(RuleBasedStateMachine):
    """One session, driven step by step against the model."""

    def __init__(self, ctx: MachineContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.history = History(meta={"suite": "property", "script": ctx.script, "script_word_ms": ctx.word_ms,
                                     "example": ctx.examples + 1})
        self.model = StreamModel(tuple(ctx.script.split()), ctx.word_ms)
        self.codec = ReferenceCodec()
        self.session: SessionInfo | None = None
        self.stream: SyncStream | None = None
        self.streams: list[SyncStream] = []  # every connection, to drop them all at the end
        self.closed_seen: set[int] = set()
        self.acked: dict[int, int] = {}  # the last ack's received_offset, per connection
        self.max_frame = MAX_FRAME  # lowered to the server's ready.max_frame_bytes
        self.pipeline: list[str] = []
        self.finalize_mode = "stream"
        self.finalizing = False
        self.finalized = False
        self.failed = False
        self.calls: list[str] = []  # the steps run so far, as hypothesis prints them
        self.idle = ctx.spent()  # past the time budget: this example does nothing
        if not self.idle:
            ctx.examples += 1
            ctx.last_history = self.history

    # --- the session's start ------------------------------------------------------------------
    @initialize(start=st.sampled_from(START_MODES), sizes=st.lists(SIZES, min_size=2, max_size=4),
                finalize=st.sampled_from(FINALIZE_MODES))
    @guarded
    def open_session(self, start: str, sizes: list[int], finalize: str) -> None:
        """Create the session, then its first frames: alone, in one burst, or from two connections.
        ``finalize`` is how teardown will end it."""
        self._step("open_session:" + start)
        self.finalize_mode = finalize
        params = SessionParams(engine="scripted", script=self.ctx.script, metadata={
            "script_word_ms": self.ctx.word_ms, "script_segment_words": self.ctx.segment_words})
        self.session = create_session(self.codec, self.ctx.target, params, history=self.history, http=self.ctx.http)
        self.history.meta["session_id"] = self.session.session_id
        if start == "two_connections":
            self._race_two_connections(sizes[0])
            return
        self.stream = self._connect(None)
        # The burst's frames leave back to back, so they reach the server while its engine opens.
        for size in sizes if start == "burst" else sizes[:1]:
            self._send(self.model.next_frame(size))
        self._sync()

    def _race_two_connections(self, size: int) -> None:
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(lambda attempt: self._open(None, attempt), (0, 1))
            for s in (a, b):
                self._pump(s, lambda e: isinstance(e, Ready))
            frame = self.model.next_frame(size)
            self.model.sent(frame)
            list(pool.map(lambda s: self._write(s, frame), (a, b)))
        # One of the two is superseded (4409); the other carries the session on.
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while time.monotonic() < deadline and not (a.closed or b.closed):
            for s in (a, b):
                self._pump(s, lambda e: False, 0.05)
        if a.closed == b.closed:
            state = "both closed" if a.closed else "both still open"
            self.model.problem(f"one live stream per session: two connections raced and {state} "
                               f"(codes {[s.closed_event.code for s in (a, b) if s.closed_event]})")
            self.stream = None if a.closed else b
            if self.stream is None:
                return
        else:
            self.stream, loser = (b, a) if a.closed else (a, b)
            if loser.closed_event is not None and loser.closed_event.code != 4409:
                self.model.problem(f"the superseded connection was closed with {loser.closed_event.code}, not 4409")
        self._sync()

    # --- steps ---------------------------------------------------------------------------------
    def live(self) -> bool:
        return self.idle or (self.stream is not None and not self.finalized)

    @precondition(lambda self: self.live() and self.model.taken + 2 * MAX_FRAME < len(PCM))
    @rule(size=SIZES, overlap=st.one_of(st.just(0), SMALL))
    @guarded
    def send_next(self, size: int, overlap: int) -> None:
        """New audio; the first ``overlap`` bytes were sent before and must not be taken again."""
        self._step("send_next" if not overlap or not self.model.taken else "send_next_overlapping")
        overlap = min(overlap, self.max_frame // 2)
        self._send(self.model.next_frame(min(size, self.max_frame - overlap), overlap))
        self._sync()

    @precondition(lambda self: self.live() and self.model.taken >= 2)
    @rule(percent=st.integers(0, 99), size=SIZES)
    @guarded
    def resend_old(self, percent: int, size: int) -> None:
        """A duplicate: audio wholly below the server's offset, which it must ignore (and ack)."""
        self._step("resend_old")
        self._send(self.model.old_frame(percent, min(size, self.max_frame)))
        self._sync(fresh=True)

    @precondition(lambda self: self.live() and self.model.taken + 2 * MAX_FRAME < len(PCM))
    @rule(skip=SIZES, size=SIZES)
    @guarded
    def skip_ahead(self, skip: int, size: int) -> None:
        """A gap: the server must refuse it with audio_gap naming its offset; then resend from there."""
        self._step("skip_ahead")
        gap = self.model.gap_frame(skip, min(size, self.max_frame))
        self._send(gap)
        stream = self._current()
        got = self._pump(stream, lambda e: isinstance(e, Error) and e.code == "audio_gap" or bool(self.model.problems))
        if not got and not self.model.problems:
            self.model.gap_unanswered(gap)
        if self.model.problems:
            return
        for offset in range(self.model.taken, gap.end, self.max_frame):
            self._send(Frame(offset, min(self.max_frame, gap.end - offset)))
        self._sync()

    @precondition(lambda self: self.live())
    @rule(back=st.integers(0, 2))
    @guarded
    def drop_and_resume(self, back: int) -> None:
        """Drop the TCP connection with no close frame, reconnect with ``last_segment_id`` (``back``
        segments before the last one held, so some finals come twice) and resume at committed_offset."""
        self._step("drop_and_resume")
        self._current().abort()
        last = max(-1, self.model.last_segment_id() - back)
        self.model.expect_replay(last)
        self.stream = self._connect(last)
        # The first ack on a new connection follows the replays: a 2-byte duplicate asks for one.
        if self.model.taken >= 2:
            self._send(Frame(self.model.taken - 2, 2))
            self._sync(fresh=True)
        else:
            self._sync()

    @precondition(lambda self: self.live())
    @rule()
    @guarded
    def keepalive(self) -> None:
        self._step("keepalive")
        self._control(self._current(), "keepalive")
        self._pump(self._current(), lambda e: False, SETTLE_S)

    # --- invariant -----------------------------------------------------------------------------
    @invariant()
    def server_agrees_with_model(self) -> None:
        """Acks never go backwards and never pass the audio sent once; received_offset is the
        model's offset at every sync point; durable <= received; segment ids have no holes once
        replays are in; finals never overlap, never change on replay, and carry the script's words."""
        if self.model.problems and not self.idle:
            self._fail("; ".join(self.model.problems[:3]))

    def teardown(self) -> None:
        """Every example ends with a finalize and its end checks, then leaves nothing behind."""
        if self.idle:
            return
        self.calls.append("teardown()")
        try:
            if self.live() and not self.failed and not self.model.problems:
                self._step("finalize:" + self.finalize_mode)
                self._finalize(self.finalize_mode)
                if self.model.problems:
                    self._fail("; ".join(self.model.problems[:3]))
        finally:
            self._cleanup()
            if self.session is not None:  # an example hypothesis gave up on before it began is no session
                self.ctx.record_example(self.history, self.model, ok=not self.failed and not self.model.problems,
                                        finished=self.finalized)

    # --- the end ---------------------------------------------------------------------------------
    def _finalize(self, mode: str) -> None:
        """End of audio over the stream and/or HTTP: the stream gets the last finals and the
        pipeline's events, then closes 1000; the pipeline runs exactly once either way."""
        stream = self._current()
        self.finalizing = True
        if "stream" in mode:
            self._control(stream, "finalize")
        if "http" in mode:
            resp = self._http("POST", "/finalize")
            if resp is not None and resp.status != 202:
                self.model.problem(f"POST /finalize answered {resp.status}, not 202: {resp.body!r:.200}")
        closed = self._pump(stream, lambda e: isinstance(e, Closed), FINALIZE_TIMEOUT_S)
        self.finalized = True
        if not closed:
            self.model.problem(f"finalize: the stream did not close within {FINALIZE_TIMEOUT_S:g} s "
                               f"(pipeline events so far: {self.pipeline})")
            return
        self.model.synced(self.last_received)
        self.model.problems.extend(self.model.transcript_problems())
        self.model.problems.extend(self.model.pipeline_problems(self.pipeline, "on the stream"))
        self._check_session_body()

    def _check_session_body(self) -> None:
        resp = self._http("GET", "")
        if resp is None or resp.status != 200 or not isinstance(resp.body, dict):
            self.model.problem(f"GET /v1/sessions/{{id}} after finalize failed: {resp and resp.status}")
            return
        body, taken = resp.body, self.model.taken
        if body.get("state") != "completed":
            self.model.problem(f"session state is {body.get('state')!r} after its pipeline, not 'completed'")
        if body.get("received_offset") != taken:
            self.model.problem(f"GET session: received_offset {body.get('received_offset')} but {taken} bytes were "
                               "sent once")
        durable = body.get("durable_offset")
        if not isinstance(durable, int) or durable > taken:
            self.model.problem(f"GET session: durable_offset {durable!r} is not an offset at or below {taken}")
        stored = [(f.get("segment_id"), f.get("text")) for f in body.get("finals") or [] if isinstance(f, dict)]
        streamed = [(k, f.text) for k, f in sorted(self.model.finals.items())]
        if stored != streamed:
            self.model.problem(f"GET session: stored finals {stored[:6]} differ from the finals streamed {streamed[:6]}")
        self.model.problems.extend(self.model.pipeline_problems(body_events(body), "in GET /v1/sessions/{id}"))

    def _cleanup(self) -> None:
        for s in self.streams:
            if not s.closed:
                s.abort()
        if self.session is not None:  # the history keeps what happened; the server need not
            self._http("DELETE", "", quiet=True)

    # --- plumbing ------------------------------------------------------------------------------
    @property
    def last_received(self) -> int | None:
        """What the live connection was last told the server has taken."""
        return self.acked.get(id(self.stream)) if self.stream is not None else None

    def _step(self, name: str) -> None:
        self.ctx.steps[name] = self.ctx.steps[name] + 1
        self.history.add("note", text=f"step {name}")

    def _fail(self, message: str) -> None:
        self._record_failure(message)
        raise AssertionError(message)

    def _record_failure(self, message: str, assertion: bool = True) -> None:
        self.failed = True
        self.history.meta["symptom"] = message
        self.ctx.failure = Failure(self.history, message, tuple(self.calls), assertion)

    def _current(self) -> SyncStream:
        if self.stream is None:
            raise AssertionError("no live stream for the session")
        return self.stream

    def _open(self, last_segment_id: int | None, attempt: int) -> SyncStream:
        assert self.session is not None
        try:
            stream = open_stream(self.codec, self.ctx.target, self.session, history=self.history, attempt=attempt,
                                 last_segment_id=last_segment_id, open_timeout=STEP_TIMEOUT_S)
        except StreamConnectError as exc:
            self._fail(f"stream refused: {exc}")
        self.streams.append(stream)
        return stream

    def _connect(self, last_segment_id: int | None) -> SyncStream:
        stream = self._open(last_segment_id if last_segment_id is None or last_segment_id >= 0 else None,
                            attempt=len(self.streams))
        if not self._pump(stream, lambda e: isinstance(e, Ready)):
            self._fail(f"no ready within {STEP_TIMEOUT_S:g} s of the stream opening")
        return stream

    def _write(self, stream: SyncStream, frame: Frame) -> None:
        try:
            stream.send_audio(frame.offset, PCM[frame.offset:frame.end])
            self.ctx.bytes_sent += frame.length
        except ConnectionClosed:
            pass  # the receive side reports the close code

    def _control(self, stream: SyncStream, kind: str) -> None:
        try:
            stream.send_control(kind)
        except ConnectionClosed:
            self._pump(stream, lambda e: False, 0)  # records the close code the server sent

    def _send(self, frame: Frame) -> None:
        self.model.sent(frame)
        stream = self._current()
        self._write(stream, frame)
        if stream.closed:
            self._pump(stream, lambda e: False, 0)

    def _sync(self, fresh: bool = False) -> None:
        """Wait until the server has acked every byte sent (a new ack if ``fresh``), then let the
        model compare. Stops early once the model has a problem."""
        need = self.model.taken
        if fresh or (need and (self.last_received or 0) < need):
            def done(e: Event) -> bool:
                return isinstance(e, Ack) and e.received_offset >= need or bool(self.model.problems)
            self._pump(self._current(), done)
            self._pump(self._current(), lambda e: bool(self.model.problems), SETTLE_S if fresh else 0)
        if not self.model.problems:  # a problem stops the wait early: the offsets are not final then
            self.model.synced(self.last_received if (need or fresh) else need)

    def _pump(self, stream: SyncStream, stop: Callable[[Event], bool], timeout: float = STEP_TIMEOUT_S) -> bool:
        """Read events into the model until ``stop`` holds (True), the stream closes or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            if stream.closed and id(stream) in self.closed_seen:
                return False
            try:
                event = stream.recv(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
            self._on_event(stream, event)
            if stop(event):
                return True
            if isinstance(event, Closed) or time.monotonic() >= deadline:
                return False

    def _on_event(self, stream: SyncStream, event: Event) -> None:
        m = self.model
        if isinstance(event, Ready):
            if event.max_frame_bytes:
                self.max_frame = max(2, min(MAX_FRAME, even(event.max_frame_bytes)))
            m.on_ready(event.committed_offset)
            self.acked.pop(id(stream), None)
        elif isinstance(event, Ack):
            m.on_ack(event.received_offset, event.durable_offset)
            self.acked[id(stream)] = event.received_offset
        elif isinstance(event, Final):
            m.on_final(event)
        elif isinstance(event, PipelineEvent):
            self.pipeline.append(event.name)
        elif isinstance(event, Error):
            if event.code == "audio_gap":
                m.on_gap(event.details.get("expected_offset"))
            else:
                m.problem(f"server error {event.code}: {event.message}")
        elif isinstance(event, Closed):
            self.closed_seen.add(id(stream))
            superseded = event.code == 4409 and stream is not self.stream
            if not superseded and not (event.code == 1000 and self.finalizing):
                m.problem(f"stream closed unexpectedly: {event.code} {event.reason!r}")

    def _http(self, method: str, suffix: str, quiet: bool = False) -> Any:
        assert self.session is not None
        path = f"/v1/sessions/{self.session.session_id}{suffix}"
        request = HttpRequest(method, path, {"Authorization": f"Bearer {self.ctx.target.api_key}"})
        try:
            return http_request(self.ctx.target, request, history=self.history, http=self.ctx.http,
                                timeout_s=STEP_TIMEOUT_S)
        except httpx.HTTPError as exc:
            if not quiet:
                self.model.problem(f"{method} {path} failed: {exc}")
            return None
