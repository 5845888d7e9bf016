"""One streaming session's logic, sans-I/O: the state machine both drivers run.

:class:`SessionCore` decides what to do next (``next_action(now)``) and is told what happened
(``on_http_response``, ``on_connected``, ``on_frame``, ``on_sent``, ``on_closed`` …). It owns no
socket and reads no clock: drivers pass ``now`` (``time.monotonic()`` seconds) and do the I/O, so
the asyncio driver and the blocking (Locust/gevent) driver are thin executors of the same logic.

The session: create it over HTTP (retrying a 503 after its Retry-After), connect, wait for
``ready``, send audio paced in real time from ``committed_offset``, keep unacked audio in a bounded
buffer, resend from ``audio_gap.expected_offset``, detect lost finals (segment k+2 after k) and
reconnect with ``last_segment_id=k``, reconnect after a drop per the close-code policy, finalize
(over the stream or HTTP), wait for the server's close 1000, then GET the session's final state.
Every loop is bounded: reconnects by ``max_reconnects``, gap rewinds by ``max_gap_rewinds``, each
wait by a timeout, and the whole session by ``deadline_s``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.audio import Pacer, PacingStats, chunk_bytes
from harness.drivers.buffer import AudioBuffer, ResendUnavailable
from harness.drivers.policy import close_decision
from harness.history import History
from harness.protocols.base import (
    BYTES_PER_SECOND,
    Codec,
    ConnectRequest,
    HttpRequest,
    ProtocolError,
    SessionCreateError,
    SessionInfo,
    SessionParams,
    StreamTarget,
    opening_frames,
    stream_finished,
)
from harness.protocols.events import Ack, Error, Event, Final, PipelineEvent, Ready
from harness.safety import require_loopback

FinalizeMode = Literal["stream", "http", "none"]


@dataclass(frozen=True)
class SessionPlan:
    """How to run one session. Times in seconds, sizes in bytes."""

    pcm: bytes
    params: SessionParams = field(default_factory=SessionParams)
    chunk_ms: float = 100
    pace: float = 1.0  # 1 = real time, 2 = twice as fast, 0 = as fast as possible
    finalize: FinalizeMode = "stream"  # how the audio ends: stream message, HTTP call, or not at all
    linger_s: float = 1.0  # finalize="none": keep listening this long after the last ack, then close
    max_reconnects: int = 5  # every reconnect (after a drop, capacity close or lost final) counts
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 5.0
    backoff_jitter: float = 0.5  # 0..1: fraction of each delay taken off at random
    capacity_retry_s: float = 1.0  # after close 1013
    max_create_retries: int = 3  # POST /v1/sessions answered 503 / failed
    connect_timeout_s: float = 10.0
    ready_timeout_s: float = 10.0
    http_timeout_s: float = 10.0
    finish_timeout_s: float = 30.0  # finalize sent -> the server's close
    deadline_s: float | None = None  # whole session; None: audio time / pace + 60 s
    max_buffer_bytes: int = 60 * BYTES_PER_SECOND  # unacked audio held for resend
    max_gap_rewinds: int = 20
    resync_on_lost_final: bool = True
    keepalive_s: float | None = 5.0  # send a keepalive after this long with nothing sent (None: never)
    fetch_state: bool = True  # GET the session when done (outcome.final_state)
    allow_remote: bool = False
    seed: int | None = None  # jitter's random seed (None: random)
    session: SessionInfo | None = None  # an existing session to stream into (skips creation)
    meta: dict[str, Any] = field(default_factory=dict)  # copied into history.meta

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.pcm, (bytes, bytearray)) or len(self.pcm) % 2:
            problems.append("pcm must be bytes of whole 16-bit samples (even length)")
        if not self.chunk_ms > 0:
            problems.append(f"chunk_ms must be > 0, got {self.chunk_ms!r}")
        if not (self.pace >= 0 and math.isfinite(self.pace)):
            problems.append(f"pace must be a finite number >= 0, got {self.pace!r}")
        if self.finalize not in ("stream", "http", "none"):
            problems.append(f"finalize must be 'stream', 'http' or 'none', got {self.finalize!r}")
        for name in ("max_reconnects", "max_create_retries", "max_gap_rewinds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.keepalive_s is not None and not self.keepalive_s > 0:
            problems.append(f"keepalive_s must be > 0 or None, got {self.keepalive_s!r}")
        for name in ("linger_s", "backoff_base_s", "backoff_cap_s", "capacity_retry_s", "connect_timeout_s",
                     "ready_timeout_s", "http_timeout_s", "finish_timeout_s"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.backoff_jitter <= 1:
            problems.append(f"backoff_jitter must be within 0..1, got {self.backoff_jitter!r}")
        if self.deadline_s is not None and not self.deadline_s > 0:
            problems.append(f"deadline_s must be > 0, got {self.deadline_s!r}")
        if self.chunk_ms > 0 and self.max_buffer_bytes < chunk_bytes(self.chunk_ms):
            problems.append(f"max_buffer_bytes ({self.max_buffer_bytes}) is smaller than one chunk")
        if problems:
            raise ValueError("bad SessionPlan: " + "; ".join(problems))

    @property
    def audio_s(self) -> float:
        return len(self.pcm) / BYTES_PER_SECOND

    @property
    def effective_deadline_s(self) -> float:
        if self.deadline_s is not None:
            return self.deadline_s
        paced = self.audio_s / self.pace if self.pace > 0 else 0.0
        return paced + 60.0


# --- actions: what the core asks a driver to do -----------------------------------------------


@dataclass(frozen=True)
class HttpCall:
    request: HttpRequest
    purpose: Literal["create", "finalize", "get"]
    timeout_s: float


@dataclass(frozen=True)
class Connect:
    request: ConnectRequest
    timeout_s: float
    attempt: int


@dataclass(frozen=True)
class SendAudio:
    frame: bytes | str  # a text frame for protocols that carry audio in JSON (OpenAI Realtime)
    offset: int
    length: int
    due: float | None  # when it was due (pacing), None for resends and unpaced sends


@dataclass(frozen=True)
class SendControl:
    frame: bytes | str
    message: str  # a control kind, or OPENING for the codec's opening frames


@dataclass(frozen=True)
class Wait:
    """Connected: receive until ``until`` (return early on any frame). Not connected: sleep."""

    until: float


@dataclass(frozen=True)
class CloseStream:
    code: int
    reason: str


@dataclass(frozen=True)
class Done:
    pass


OPENING = "opening"  # SendControl.message of a codec's opening frame (recorded as control_sent)

Action = HttpCall | Connect | SendAudio | SendControl | Wait | CloseStream | Done


@dataclass
class SessionOutcome:
    """What a session ended with. ``completed``: the server closed 1000 after our finalize (or,
    with finalize="none", every byte was acked and the client closed)."""

    session_id: str | None
    history: History
    transcript: str
    completed: bool
    error: str | None
    close_code: int | None
    reconnects: int
    state: str | None = None  # the session's state per the final GET
    final_state: dict[str, Any] | None = None  # the final GET's body
    pacing: PacingStats | None = None
    protocol_errors: int = 0
    buffer_peak_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.completed and self.error is None


def require_loopback_target(target: StreamTarget, allow_remote: bool) -> None:
    """Loopback only unless ``allow_remote``: raises harness.safety.RemoteTargetError naming the host."""
    for url in [target.http_url] + ([target.stream_base_url] if target.stream_base_url else []):
        require_loopback(url, allow_remote)


def decode_frame(codec: Codec, frame: bytes | str, history: History | None) -> list[Event]:
    """Decode (and record, given a history). A ProtocolError becomes one ``protocol_error`` Error
    event with ``details.source = "harness"``, so a malformed frame is seen by the checks
    instead of crashing the client."""
    try:
        events = codec.decode(frame)
    except ProtocolError as exc:
        events = [Error(code="protocol_error", message=str(exc), details={"source": "harness"})]
    if history is not None:
        for event in events:
            history.add_event(event)
    return events


def is_protocol_error(events: list[Event]) -> bool:
    return (
        len(events) == 1
        and isinstance(events[0], Error)
        and events[0].code == "protocol_error"
        and events[0].details.get("source") == "harness"
    )


# --- the state machine ------------------------------------------------------------------------

_CREATE, _BACKOFF, _CONNECT, _STREAM, _FETCH, _DONE = "create", "backoff", "connect", "stream", "fetch", "done"


class SessionCore:
    """The session state machine. Single-threaded: a driver calls it from one thread/task."""

    def __init__(self, codec: Codec, target: StreamTarget, plan: SessionPlan, history: History | None = None) -> None:
        require_loopback_target(target, plan.allow_remote)
        if plan.finalize == "http" and not codec.http_finalize:
            raise ValueError(f"protocol {codec.name!r} has no HTTP finalize; use finalize='stream' or 'none'")
        self.codec, self.target, self.plan = codec, target, plan
        self.history = history if history is not None else History()
        self.rng = random.Random(plan.seed)
        self.now = 0.0
        self.phase = _CREATE
        self.session: SessionInfo | None = plan.session
        self.error: str | None = None
        self.completed = False
        self.close_code: int | None = None
        self.reconnects = 0
        self.failures = 0  # closes since the stream last made progress (backoff exponent)
        self.create_retries = 0
        self.protocol_errors = 0
        self.wake_at = 0.0
        self.deadline: float | None = None
        self.buffer = AudioBuffer(plan.pcm, plan.max_buffer_bytes, keep=codec.has_offsets)
        self.pacer = Pacer(plan.pace, clock=lambda: self.now)
        self.chunk = chunk_bytes(plan.chunk_ms)
        # per-connection state
        self.connected = False
        self.ready = False
        self.ready_deadline = 0.0
        self.opening: list[bytes | str] = []  # opening frames still to send on this connection
        self.cursor = 0  # next stream offset to send
        self.finalize_sent = False  # on this connection
        self.pending_close: tuple[int, str, str] | None = None  # code, reason, then
        self.close_sent = False
        self.finish_deadline: float | None = None
        self.linger_until: float | None = None
        self.ack_deadline: float | None = None
        self.last_sent_at = 0.0
        # across connections
        self.finalized_once = False  # a finalize went out on some connection, or HTTP finalize succeeded
        self.http_finalized = False
        self.acked = 0  # highest received_offset acked
        self.durable = 0
        self.gap_rewinds = 0
        self.last_gap: tuple[int, int] | None = None  # (expected_offset, acked) of the last rewind
        self.last_contiguous = -1  # highest segment id with every id below it seen
        self.seen_segments: set[int] = set()
        self.missing_segments: set[int] = set()  # holes seen on the stream, not yet filled
        self.final_state: dict[str, Any] | None = None
        self._fetch_done = False
        self.history.meta.update({
            "protocol": codec.name,
            "target": target.http_url,
            "stream_base": target.ws_base,
            "engine": plan.params.engine,
            "pace": plan.pace,
            "chunk_ms": plan.chunk_ms,
            "audio_bytes": len(plan.pcm),
            "finalize": plan.finalize,
        })
        self.history.meta.update(plan.meta)
        if self.session is not None:
            self.history.session_id = self.session.session_id
            self.phase = _CONNECT

    # --- helpers ---------------------------------------------------------------------------
    def note(self, text: str, **data: Any) -> None:
        self.history.add("note", text=text, **data)

    def fail(self, message: str) -> None:
        """Keep the first error: it is the cause, later ones are consequences."""
        if self.error is None:
            self.error = message
            self.note(f"error: {message}", error=message)

    @property
    def total(self) -> int:
        return len(self.plan.pcm)

    @property
    def work_remains(self) -> bool:
        if self.cursor < self.total:
            return True
        if self.plan.finalize == "none":
            return self.codec.has_offsets and self.acked < self.total
        return not self.completed  # a finalize to deliver, or its finals and pipeline events to get

    def _finish(self) -> None:
        """Go to the final GET (when wanted and possible), then done."""
        self.connected = False
        if self.plan.fetch_state and self.session is not None and not self._fetch_done:
            if self.codec.get_session_request(self.target, self.session) is not None:
                self.phase = _FETCH
                return
        self.phase = _DONE

    def _request_close(self, code: int, reason: str, then: str) -> None:
        if self.pending_close is None:
            self.pending_close = (code, reason, then)

    # --- the driver asks -------------------------------------------------------------------
    def next_action(self, now: float) -> Action:
        self.now = now
        if self.deadline is None:
            self.deadline = now + self.plan.effective_deadline_s
        if self.phase in (_CREATE, _BACKOFF, _CONNECT, _STREAM) and now >= self.deadline:
            self.fail(f"session deadline of {self.plan.effective_deadline_s:.1f} s passed while in {self.phase!r}")
            if self.connected:
                self._request_close(1000, "deadline", "stop")
            else:
                self._finish()
        if self.phase == _DONE:
            return Done()
        if self.phase == _FETCH:
            self._fetch_done = True
            assert self.session is not None
            request = self.codec.get_session_request(self.target, self.session)
            assert request is not None
            return HttpCall(request, "get", self.plan.http_timeout_s)
        if self.phase == _CREATE:
            if now < self.wake_at:
                return Wait(min(self.wake_at, self.deadline))
            request = self.codec.create_session_request(self.target, self.plan.params)
            if request is None:  # no session step (Deepgram): the stream is the session
                self.session = self.codec.local_session(self.plan.params)
                self.phase = _CONNECT
                return self.next_action(now)
            return HttpCall(request, "create", min(self.plan.http_timeout_s, max(0.0, self.deadline - now)))
        if self.phase == _BACKOFF:
            if now < self.wake_at:
                return Wait(min(self.wake_at, self.deadline))
            self.phase = _CONNECT
        if self.phase == _CONNECT:
            return self._connect_action(now)
        return self._stream_action(now)

    def _connect_action(self, now: float) -> Connect:
        assert self.session is not None and self.deadline is not None
        attempt = self.reconnects
        last_segment_id = self.last_contiguous if self.codec.supports_resume else None
        request = self.codec.connect_request(self.target, self.session, resume_offset=self.cursor, last_segment_id=last_segment_id)
        self.history.add("connect", attempt=attempt, url=request.url, last_segment_id=last_segment_id)
        self.phase = _STREAM
        return Connect(request, min(self.plan.connect_timeout_s, max(0.0, self.deadline - now)), attempt)

    def _stream_action(self, now: float) -> Action:
        action = self._stream_step(now)
        ka = self.plan.keepalive_s
        if (isinstance(action, Wait) and ka and self.connected and self.ready and not self.finalized_once
                and self.pending_close is None):
            # Nothing to send for a while (back-pressure, lingering, waiting for acks): keep the
            # server's idle timer from closing a stream that still has work (4408, NET-0001).
            due = self.last_sent_at + ka
            if now >= due:
                frame = self.codec.encode_control("keepalive")
                if frame is not None:
                    return SendControl(frame, "keepalive")
            return Wait(min(action.until, due))
        return action

    def _stream_step(self, now: float) -> Action:
        assert self.deadline is not None
        if self.pending_close is not None and not self.close_sent:
            self.close_sent = True
            code, reason, then = self.pending_close
            self.note(f"client closes the stream with {code} ({reason}); then {then}",
                      client_close=code, reason=reason)
            return CloseStream(code, reason)
        if self.close_sent:  # the driver reports on_closed once the close completes
            return Wait(min(now + 0.05, self.deadline))
        if self.opening:  # the codec's opening frames go first, before any audio
            return SendControl(self.opening[0], OPENING)
        if self.codec.sends_ready and not self.ready:
            if now >= self.ready_deadline:
                self.note(f"no ready within {self.plan.ready_timeout_s:g} s: reconnecting")
                self._request_close(1000, "no ready", "reconnect")
                return self._stream_action(now)
            return Wait(self.ready_deadline)
        if self.cursor < self.total:
            if not self.buffer.room_for(self.cursor, self.chunk):
                # Back-pressure: the server has not made enough durable. Acks wake us.
                return Wait(self.deadline)
            due = self.pacer.due(self.cursor)
            if due is not None and now < due:
                return Wait(due)
            try:
                payload = self.buffer.take(self.cursor, self.chunk)
            except ResendUnavailable as exc:
                self.fail(f"cannot resend from offset {self.cursor}: {exc}")
                self._request_close(1000, "cannot resume", "stop")
                return self._stream_action(now)
            return SendAudio(self.codec.encode_audio(self.cursor, payload), self.cursor, len(payload), due)
        if self.codec.has_offsets and self.acked < self.total and not self.finalized_once:
            # Every byte must be taken before the audio is declared over: an audio_gap answered
            # after a finalize would come too late to resend. Acks (or a gap) wake us.
            if self.ack_deadline is None:
                self.ack_deadline = now + self.plan.finish_timeout_s
            if now >= self.ack_deadline:
                self.fail(f"the server acked only {self.acked} of {self.total} bytes within "
                          f"{self.plan.finish_timeout_s:g} s of the last audio frame")
                self._request_close(1000, "no final ack", "stop")
                return self._stream_action(now)
            return Wait(min(self.ack_deadline, self.deadline))
        if self.plan.finalize == "stream" and not self.finalize_sent:
            kind = self.codec.finalize_control
            frame = self.codec.encode_control(kind)
            assert frame is not None, f"{self.codec.name} has no {kind} message"
            return SendControl(frame, kind)
        if self.plan.finalize == "http" and not self.http_finalized:
            assert self.session is not None
            request = self.codec.finalize_request(self.target, self.session)
            assert request is not None
            # The server may close the stream 1000 before the HTTP answer arrives: that close
            # is the finalize taking effect, not a premature one.
            self.finalized_once = True
            return HttpCall(request, "finalize", min(self.plan.http_timeout_s, max(0.0, self.deadline - now)))
        if self.plan.finalize == "none":
            if self.linger_until is None:
                self.linger_until = now + self.plan.linger_s
            if now >= self.linger_until:
                self.completed = True
                self._request_close(1000, "done", "stop")
                return self._stream_action(now)
            return Wait(self.linger_until)
        # Finalized: wait for the last finals, the pipeline events and the server's close 1000.
        if self.finish_deadline is None:
            self.finish_deadline = now + self.plan.finish_timeout_s
        if now >= self.finish_deadline:
            self.fail(f"no close from the server within {self.plan.finish_timeout_s:g} s of finalize")
            self._request_close(1000, "finish timeout", "stop")
            return self._stream_action(now)
        return Wait(min(self.finish_deadline, self.deadline))

    # --- the driver reports ----------------------------------------------------------------
    def on_http_response(self, call: HttpCall, status: int, body: Any, headers: dict[str, str], latency_ms: float) -> None:
        self.history.add("http", method=call.request.method, path=call.request.path, status=status,
                         latency_ms=round(latency_ms, 3), error=None)
        if call.purpose == "create":
            try:
                self.session = self.codec.parse_session_created(status, body, headers, self.plan.params)
            except SessionCreateError as exc:
                self._create_failed(str(exc), exc.retry_after_s if exc.retryable else None, retryable=exc.retryable)
                return
            except ProtocolError as exc:
                self.fail(str(exc))
                self.phase = _DONE
                return
            self.history.session_id = self.session.session_id
            self.phase = _CONNECT
        elif call.purpose == "finalize":
            if 200 <= status < 300:
                self.http_finalized = self.finalized_once = True
                self.finish_deadline = self.now + self.plan.finish_timeout_s
            else:
                self.fail(f"HTTP finalize answered {status}: {_body_text(body)}")
                self._request_close(1000, "finalize failed", "stop")
        elif call.purpose == "get":
            if status == 200 and isinstance(body, (dict, str, bytes)):
                parsed = _json_body(body)
                if isinstance(parsed, dict):
                    self.final_state = parsed
                    self._recover_from_record(parsed)
            else:
                self.note(f"GET session answered {status}", body=_body_text(body))
            self.phase = _DONE

    def on_http_failed(self, call: HttpCall, error: str, latency_ms: float) -> None:
        self.history.add("http", method=call.request.method, path=call.request.path, status=None,
                         latency_ms=round(latency_ms, 3), error=error)
        if call.purpose == "create":
            self._create_failed(f"session creation failed: {error}", None, retryable=True)
        elif call.purpose == "finalize":
            self.fail(f"HTTP finalize failed: {error}")
            self._request_close(1000, "finalize failed", "stop")
        else:
            self.note("GET session failed", error=error)
            self.phase = _DONE

    def _create_failed(self, message: str, retry_after: float | None, retryable: bool) -> None:
        if retryable and self.create_retries < self.plan.max_create_retries:
            self.create_retries += 1
            delay = retry_after if retry_after is not None else self.plan.backoff_base_s * 2 ** self.create_retries
            self.note(f"{message}: retry {self.create_retries}/{self.plan.max_create_retries} in {delay:.2f} s")
            self.wake_at = self.now + delay
            return
        self.fail(message)
        self.phase = _DONE

    def on_connected(self, latency_ms: float, attempt: int) -> None:
        self.history.add("connected", attempt=attempt, latency_ms=round(latency_ms, 3))
        self.connected = True
        self.last_sent_at = self.now
        self.ready = not self.codec.sends_ready
        self.ready_deadline = self.now + self.plan.ready_timeout_s
        self.opening = opening_frames(self.codec)
        self.finalize_sent = False
        self.pending_close = None
        self.close_sent = False
        self.linger_until = None
        self.ack_deadline = None
        self.last_gap = None
        self.finish_deadline = self.finish_deadline if self.http_finalized else None

    def on_connect_failed(self, error: str, status: int | None, attempt: int) -> None:
        self.history.add("connect_failed", attempt=attempt, error=error, status=status)
        if status in (400, 401, 403, 404):  # bad parameters or credentials: retrying cannot help
            self.fail(f"stream handshake refused with HTTP {status}: {error}")
            self._finish()
            return
        self._after_close(1006, f"connect failed: {error}")

    def on_sent(self, action: SendAudio | SendControl) -> None:
        self.last_sent_at = self.now
        if isinstance(action, SendAudio):
            self.history.add("audio_sent", offset=action.offset, length=action.length)
            self.pacer.mark_sent(action.offset, action.due)
            if self.cursor == action.offset:  # an audio_gap may have rewound it meanwhile
                self.cursor = action.offset + action.length
        else:
            self.history.add("control_sent", message=action.message)
            if action.message == OPENING and self.opening:
                self.opening.pop(0)
            elif action.message == self.codec.finalize_control:
                self.finalize_sent = self.finalized_once = True
                self.finish_deadline = self.now + self.plan.finish_timeout_s

    def on_frame(self, frame: bytes | str) -> list[Event]:
        events = decode_frame(self.codec, frame, None)
        if is_protocol_error(events):
            self.protocol_errors += 1
        learned = getattr(self.codec, "learned_session_id", None)
        if learned and self.session is not None and self.session.session_id is None:
            self.session = dataclasses.replace(self.session, session_id=learned)
            self.history.session_id = learned
        for event in events:
            self.history.add_event(event)
            self._apply(event)
        if stream_finished(self.codec) and self.finalized_once and self.connected and not self.completed:
            # The server never closes this protocol's stream: its last result ends the session.
            self.completed = True
            self._request_close(1000, "finished", "stop")
        return events

    def _apply(self, event: Event) -> None:
        if isinstance(event, Ready):
            self._on_ready(event)
        elif isinstance(event, Ack):
            if event.received_offset > self.acked or event.durable_offset > self.durable:
                self.failures = 0  # the stream is making progress again
            self.acked = max(self.acked, event.received_offset)
            self.durable = max(self.durable, event.durable_offset)
            self.buffer.release(min(event.durable_offset, event.received_offset))
            if self.cursor < self.acked:
                # A rewind for an audio_gap was overtaken: the late frame arrived and the server
                # has taken everything below ``acked`` since. Resending from the old cursor would
                # only send duplicates, from audio the durable offset may already have released.
                self.note(f"the server took up to {self.acked} after the audio_gap rewind to {self.cursor}: "
                          f"sending from {self.acked}", cursor=self.cursor, received_offset=self.acked)
                self.cursor = self.acked
        elif isinstance(event, Final):
            self._on_final(event)
        elif isinstance(event, Error) and event.code == "audio_gap":
            self._on_gap(event)
        elif isinstance(event, PipelineEvent):
            pass  # recorded; lifecycle checks read them from the history

    def _on_ready(self, ready: Ready) -> None:
        self.ready = True
        if ready.max_frame_bytes:
            # Keep whole frames (header included) within the server's limit, in whole samples.
            self.chunk = max(2, min(chunk_bytes(self.plan.chunk_ms), (ready.max_frame_bytes - 8) // 2 * 2))
        committed = min(ready.committed_offset, self.total)
        if committed % 2:
            self.fail(f"ready.committed_offset {ready.committed_offset} is odd: not a sample boundary")
            self._request_close(1000, "bad committed_offset", "stop")
            return
        if committed < self.buffer.start:
            # The server forgot audio it had acked as durable. Resend what we still hold so the
            # loss shows up in the transcript rather than as a stuck client.
            self.note(f"ready.committed_offset {committed} is below the durable offset the server acked "
                      f"({self.buffer.start}); resending from {self.buffer.start}",
                      committed_offset=committed, durable_offset=self.buffer.start)
            committed = self.buffer.start
        if committed > self.buffer.produced:
            self.note(f"ready.committed_offset {committed} is past the audio sent ({self.buffer.produced})")
            committed = self.buffer.produced
        self.buffer.release(committed)
        # The server holds every byte below the committed offset: that is an ack of them. A
        # frame taken just before the last connection closed may never have been acked there,
        # and with nothing left to send nothing on this connection would ack it.
        self.acked = max(self.acked, committed)
        if committed != self.cursor:
            self.note(f"resuming at offset {committed} (had sent up to {self.cursor})",
                      committed_offset=committed, sent_offset=self.cursor)
        self.cursor = committed

    def _on_final(self, final: Final) -> None:
        k = final.segment_id
        if k in self.missing_segments:
            self.missing_segments.discard(k)
            self.note(f"final {k} recovered by its replay on the stream", recovered_segment=k, recovered_from="replay")
        if k <= self.last_contiguous or k in self.seen_segments:
            return  # a replay: recorded, checks compare it with the first copy
        self.seen_segments.add(k)
        while self.last_contiguous + 1 in self.seen_segments:
            self.last_contiguous += 1
        if k > self.last_contiguous + 1 and self.codec.supports_resume:
            missing = list(range(self.last_contiguous + 1, k))
            missing = [m for m in missing if m not in self.seen_segments]
            self.missing_segments.update(missing)
            if self.finalized_once:
                # After finalize the stream cannot replay them (a reconnect gets 4410): the
                # session's record has them once it completes (read by the final GET).
                self.note(f"final {k} arrived after finalize but segment(s) {missing} never did: a finalized "
                          "session cannot replay them on the stream; reading them from the session's record",
                          missing=missing)
                return
            self.note(f"final {k} arrived but segment(s) {missing} never did: reconnecting with "
                      f"last_segment_id={self.last_contiguous} to have them replayed",
                      missing=missing, last_segment_id=self.last_contiguous)
            if self.plan.resync_on_lost_final and self.connected:
                self._request_close(1000, "resync", "resync")

    def _recover_from_record(self, body: dict[str, Any]) -> None:
        """Fill the holes the stream left (finals lost after finalize, which no reconnect can
        replay) from the session's record, where the codec can read finals from it. Only holes:
        a final the stream never showed a sign of is the server's to send, not the client's to
        find, so it stays missing for the checks."""
        read = getattr(self.codec, "finals_of_record", None)
        if read is None or not self.missing_segments:
            return
        try:
            finals = read(body)
        except ProtocolError as exc:
            self.note(f"the session's record has no usable finals: {exc}")
            return
        for final in finals:
            if final.segment_id not in self.missing_segments:
                continue
            self.missing_segments.discard(final.segment_id)
            self.seen_segments.add(final.segment_id)
            self.history.add_event(final)
            self.note(f"final {final.segment_id} recovered from the session's record (GET): it was lost after "
                      "finalize, where the stream cannot replay it", recovered_segment=final.segment_id,
                      recovered_from="record")

    def _on_gap(self, error: Error) -> None:
        expected = error.details.get("expected_offset")
        if not isinstance(expected, int) or isinstance(expected, bool):
            self.fail(f"audio_gap without a usable expected_offset: {error.details!r}")
            self._request_close(1000, "bad audio_gap", "stop")
            return
        if expected >= self.cursor or expected < self.acked:
            return  # already sending from there, or stale: a later ack shows the server moved on
        if self.last_gap == (expected, self.acked):
            # The same gap with no ack since our rewind: an answer to a frame sent before the
            # rewind (they queue up when audio flows fast). Rewinding again would resend twice.
            return
        self.last_gap = (expected, self.acked)
        self.gap_rewinds += 1
        if self.gap_rewinds > self.plan.max_gap_rewinds:
            self.fail(f"more than {self.plan.max_gap_rewinds} audio_gap rewinds; last expected_offset {expected}")
            self._request_close(1000, "too many gaps", "stop")
            return
        if expected < self.buffer.start:
            self.fail(f"audio_gap asks for offset {expected}, below the durable offset {self.buffer.start} "
                      "the server acked: that audio is gone")
            self._request_close(1000, "cannot resend", "stop")
            return
        self.note(f"audio_gap: resending from {expected} (cursor was {self.cursor})", expected_offset=expected)
        self.cursor = expected

    def on_closed(self, code: int, reason: str) -> None:
        """The connection is gone (server close, our close completing, or a drop: 1006)."""
        for event in self.codec.close_events(code, reason):
            self.history.add_event(event)
        self.close_code = code
        self.connected = False
        self.ready = False
        pending, self.pending_close, self.close_sent = self.pending_close, None, False
        if pending is not None:
            _, why, then = pending
            if then == "resync":
                self._reconnect(0.0, f"reconnecting after {why}", count_failure=False)
            elif then == "reconnect":
                self._reconnect_with_backoff(1006, why)
            else:
                self._finish()
            return
        if code == 1000:
            if self.finalized_once:
                self.completed = True
            else:
                self.fail("server closed 1000 (session complete) before the client finalized")
            self._finish()
            return
        if code == 4410 and self.finalized_once:
            self.note("close 4410: the session was already finalized (our earlier finalize took effect)")
            self.completed = True
            self._finish()
            return
        self._after_close(code, reason)

    def _after_close(self, code: int, reason: str) -> None:
        if self.deadline is not None and self.now >= self.deadline:
            self.fail(f"stream closed {code} after the session deadline")
            self._finish()
            return
        self._reconnect_with_backoff(code, reason)

    def _reconnect_with_backoff(self, code: int, reason: str) -> None:
        p = self.plan
        decision = close_decision(
            code, work_remains=self.work_remains, reconnects=self.reconnects, max_reconnects=p.max_reconnects,
            failures=self.failures, base_s=p.backoff_base_s, cap_s=p.backoff_cap_s, jitter=p.backoff_jitter,
            capacity_retry_s=p.capacity_retry_s, rng=self.rng,
        )
        if decision.action == "stop":
            if code not in (4408,) or self.work_remains:
                self.fail(f"stream ended: {decision.reason}" + (f" ({reason})" if reason else ""))
            else:
                self.note(decision.reason)
            self._finish()
            return
        why = decision.reason + (f" ({reason})" if reason and code == 1006 else "")
        self._reconnect(decision.delay_s, why, count_failure=True)

    def _reconnect(self, delay_s: float, why: str, count_failure: bool) -> None:
        if self.reconnects >= self.plan.max_reconnects:
            self.fail(f"{why}: gave up after {self.reconnects} reconnect(s) (max_reconnects={self.plan.max_reconnects})")
            self._finish()
            return
        self.reconnects += 1
        if count_failure:
            self.failures += 1
        if not self.codec.supports_resume:
            # No resume: audio in flight on the dead connection is lost, the next one starts where
            # sending stopped (what a Deepgram client does).
            self.buffer.release(self.cursor)
            if self.buffer.start > self.cursor:
                # A frame read from the source whose send failed with the connection: a client
                # without offsets keeps nothing it has read, so it is lost with the connection.
                self.note(f"audio {self.cursor}..{self.buffer.start} was read but never sent: lost with the "
                          "connection", lost_from=self.cursor, lost_to=self.buffer.start)
                self.cursor = self.buffer.start
        self.note(why, reconnect=self.reconnects, delay_s=round(delay_s, 3))
        self.wake_at = self.now + delay_s
        self.phase = _BACKOFF

    def outcome(self) -> SessionOutcome:
        state = self.final_state.get("state") if isinstance(self.final_state, dict) else None
        return SessionOutcome(
            session_id=self.session.session_id if self.session else None,
            history=self.history,
            transcript=self.history.transcript(),
            completed=self.completed,
            error=self.error,
            close_code=self.close_code,
            reconnects=self.reconnects,
            state=state if isinstance(state, str) else None,
            final_state=self.final_state,
            pacing=self.pacer.stats(),
            protocol_errors=self.protocol_errors,
            buffer_peak_bytes=self.buffer.peak_bytes,
        )


def _json_body(body: Any) -> Any:
    if isinstance(body, (bytes, str)):
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None
    return body


def _body_text(body: Any) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")[:300]
    return str(body)[:300]
