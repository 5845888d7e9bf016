"""The asyncio driver: runs a :class:`~harness.drivers.session.SessionCore` over httpx and the
connection the codec's ``ConnectRequest.transport`` names (the ``websockets`` asyncio client, a
TCP stream or a python-socketio client: ``transports``). Used by pytest scenarios and the CLI.

Two tasks per connection: the main loop executes the core's actions (HTTP, connect, paced sends,
waits, close) and a receiver task feeds every incoming frame to the core and wakes the main loop,
so acks, finals and gap errors are handled while audio is being paced out.

Lower-level pieces for scenarios that misbehave on purpose: :func:`open_stream` (one raw
connection: send any frame, read events with a timeout, close or drop it), :func:`create_session`
and :func:`http_request`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, WebSocketException

from harness.drivers import transports
from harness.drivers._common import (
    HttpResponse,
    StreamConnectError,
    close_info,
    handshake_failure,
    parse_body,
    record_http,
    timeout_symptom,
)
from harness.drivers.session import (
    CloseStream,
    Connect,
    Done,
    OPENING,
    HttpCall,
    SendAudio,
    SendControl,
    SessionCore,
    SessionOutcome,
    SessionPlan,
    Wait,
    decode_frame,
    require_loopback_target,
)
from harness.history import History
from harness.protocols.base import Codec, HttpRequest, SessionInfo, SessionParams, StreamTarget, opening_frames
from harness.protocols.events import Closed, Event


class AsyncSessionClient:
    """Run one session end to end: ``outcome = await AsyncSessionClient(codec, target, plan).run()``."""

    def __init__(
        self,
        codec: Codec,
        target: StreamTarget,
        plan: SessionPlan,
        history: History | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.core = SessionCore(codec, target, plan, history)
        self.target = target
        self._http = http
        self._ws: Any | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def history(self) -> History:
        return self.core.history

    async def run(self) -> SessionOutcome:
        own_http = self._http is None
        http = self._http or httpx.AsyncClient(base_url=self.target.http_base, trust_env=False)
        try:
            await self._loop(http)
        finally:
            await self._drop_connection()
            if own_http:
                await http.aclose()
        return self.core.outcome()

    async def _loop(self, http: httpx.AsyncClient) -> None:
        core = self.core
        while True:
            await self._reap_receiver()
            self._wake.clear()
            action = core.next_action(time.monotonic())
            if isinstance(action, Done):
                return
            if isinstance(action, HttpCall):
                await self._http_call(http, action)
            elif isinstance(action, Connect):
                await self._connect(action)
            elif isinstance(action, (SendAudio, SendControl)):
                await self._send(action)
            elif isinstance(action, Wait):
                await self._wait(action.until)
            elif isinstance(action, CloseStream):
                await self._close(action)

    async def _http_call(self, http: httpx.AsyncClient, call: HttpCall) -> None:
        req = call.request
        start = time.monotonic()
        try:
            resp = await http.request(req.method, self.target.http_base + req.path, headers=req.headers,
                                      json=req.json, timeout=max(0.001, call.timeout_s))
        except httpx.HTTPError as exc:
            self.core.now = time.monotonic()
            self.core.on_http_failed(call, f"{type(exc).__name__}: {exc}", (self.core.now - start) * 1000)
            return
        self.core.now = time.monotonic()
        body = parse_body(resp.content, resp.headers.get("content-type"))
        self.core.on_http_response(call, resp.status_code, body, dict(resp.headers), (self.core.now - start) * 1000)

    async def _connect(self, action: Connect) -> None:
        transports.prepare(action.request)
        start = time.monotonic()
        try:
            ws = await transports.connect(action.request, open_timeout=max(0.001, action.timeout_s))
        except (OSError, TimeoutError, WebSocketException) as exc:
            self.core.now = time.monotonic()
            error, status = handshake_failure(exc)
            self.core.on_connect_failed(error, status, action.attempt)
            return
        self.core.now = time.monotonic()
        self._ws = ws
        self.core.on_connected((self.core.now - start) * 1000, action.attempt)
        self._receiver = asyncio.create_task(self._receive(ws))

    async def _receive(self, ws: Any) -> None:
        """Feed frames to the core until the connection closes, then report the close once."""
        closed_exc: ConnectionClosed | None = None
        try:
            while True:
                frame = await ws.recv()
                self.core.now = time.monotonic()
                self.core.on_frame(frame)
                self._wake.set()
        except ConnectionClosed as exc:
            closed_exc = exc
        code, reason = close_info(closed_exc)
        self.core.now = time.monotonic()
        self.core.on_closed(code, reason)
        self._wake.set()

    async def _reap_receiver(self) -> None:
        """Once the receiver has reported the close, forget the connection (re-raising any bug)."""
        if self._receiver is not None and self._receiver.done():
            receiver, self._receiver, self._ws = self._receiver, None, None
            await receiver

    async def _send(self, action: SendAudio | SendControl) -> None:
        if self._ws is None:
            return
        try:
            await self._ws.send(action.frame)
        except ConnectionClosed:
            await self._await_receiver()  # it reports the close code
            return
        self.core.now = time.monotonic()
        self.core.on_sent(action)

    async def _wait(self, until: float) -> None:
        delay = max(0.0, until - time.monotonic())
        if self._receiver is None:
            await asyncio.sleep(delay)
            return
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _close(self, action: CloseStream) -> None:
        if self._ws is not None:
            await self._ws.close(action.code, action.reason)
        await self._await_receiver()

    async def _await_receiver(self) -> None:
        if self._receiver is not None:
            receiver, self._receiver, self._ws = self._receiver, None, None
            await receiver

    async def _drop_connection(self) -> None:
        """On the way out (normal or not): no connection or task is left behind."""
        if self._receiver is not None and not self._receiver.done():
            self._receiver.cancel()
            try:
                await self._receiver
            except (asyncio.CancelledError, Exception):
                pass
        if self._ws is not None:
            self._ws.transport.abort()
        self._ws = self._receiver = None


async def run_session(codec: Codec, target: StreamTarget, plan: SessionPlan, history: History | None = None) -> SessionOutcome:
    """Shorthand for ``await AsyncSessionClient(codec, target, plan, history).run()``."""
    return await AsyncSessionClient(codec, target, plan, history).run()


# --- lower-level pieces ----------------------------------------------------------------------


async def http_request(
    target: StreamTarget,
    request: HttpRequest,
    *,
    history: History | None = None,
    http: httpx.AsyncClient | None = None,
    timeout_s: float = 10.0,
    allow_remote: bool = False,
) -> HttpResponse:
    """Make one HTTP call from a codec's request and record it. Network errors propagate
    (httpx.HTTPError) after being recorded with ``status=None``."""
    require_loopback_target(target, allow_remote)
    client = http or httpx.AsyncClient(trust_env=False)
    start = time.monotonic()
    try:
        resp = await client.request(request.method, target.http_base + request.path, headers=request.headers,
                                    json=request.json, timeout=timeout_s)
    except httpx.HTTPError as exc:
        record_http(history, request, None, (time.monotonic() - start) * 1000, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if http is None:
            await client.aclose()
    latency_ms = (time.monotonic() - start) * 1000
    record_http(history, request, resp.status_code, latency_ms, None)
    return HttpResponse(resp.status_code, parse_body(resp.content, resp.headers.get("content-type")),
                        dict(resp.headers), latency_ms)


async def create_session(
    codec: Codec,
    target: StreamTarget,
    params: SessionParams,
    *,
    history: History | None = None,
    http: httpx.AsyncClient | None = None,
    timeout_s: float = 10.0,
    allow_remote: bool = False,
) -> SessionInfo:
    """Create a session (one attempt). Raises SessionCreateError on 400/401/503 with the server's
    message and Retry-After. For a protocol with no session step, returns its local session."""
    request = codec.create_session_request(target, params)
    if request is None:
        return codec.local_session(params)
    resp = await http_request(target, request, history=history, http=http, timeout_s=timeout_s, allow_remote=allow_remote)
    session = codec.parse_session_created(resp.status, resp.body, resp.headers, params)
    if history is not None and history.session_id is None:
        history.session_id = session.session_id
    return session


class AsyncStream:
    """One raw stream connection. Every frame sent and event received goes into the history.

    ``recv`` returns events one at a time (a frame may decode to several); once the connection
    has closed it returns the ``Closed`` event on every call, so ``while not isinstance(ev,
    Closed)`` loops end.
    """

    def __init__(self, ws: Any, codec: Codec, history: History | None, latency_ms: float) -> None:
        self.ws, self.codec, self.history = ws, codec, history
        self.connect_latency_ms = latency_ms
        self._pending: deque[Event] = deque()
        self.closed_event: Closed | None = None

    @property
    def closed(self) -> bool:
        return self.closed_event is not None

    async def send_audio(self, offset: int, pcm: bytes) -> None:
        await self.ws.send(self.codec.encode_audio(offset, pcm))
        if self.history is not None:
            self.history.add("audio_sent", offset=offset, length=len(pcm))

    async def send_control(self, kind: str) -> None:
        frame = self.codec.encode_control(kind)
        if frame is None:
            raise ValueError(f"protocol {self.codec.name!r} has no {kind!r} message; close the stream instead")
        await self.ws.send(frame)
        if self.history is not None:
            self.history.add("control_sent", message=kind)

    async def send_raw(self, frame: bytes | str) -> None:
        """Send a frame as is (bad input on purpose); recorded as control_sent message ``raw``."""
        await self.ws.send(frame)
        if self.history is not None:
            self.history.add("control_sent", message="raw", binary=isinstance(frame, bytes), length=len(frame))

    async def recv(self, timeout: float = 5.0) -> Event:
        """The next event; TimeoutError if none arrives within ``timeout`` seconds."""
        if self._pending:
            return self._pending.popleft()
        if self.closed_event is not None:
            return self.closed_event
        try:
            async with asyncio.timeout(timeout):
                frame = await self.ws.recv()
        except ConnectionClosed as exc:
            self._on_closed(exc)
            return self._pending.popleft()
        self._pending.extend(decode_frame(self.codec, frame, self.history))
        return self._pending.popleft() if self._pending else await self.recv(timeout)

    async def recv_until(self, predicate: Callable[[Event], bool], timeout: float = 10.0,
                         symptom: Callable[[list[Event]], str] | None = None) -> list[Event]:
        """Events up to and including the first one matching ``predicate`` (or a Closed). Raises
        ScenarioTimeout (a TimeoutError) if neither arrives within ``timeout`` seconds, saying what
        did not happen: ``symptom(seen)`` ("no ack past offset 3200 of 67200") or "no matching event"."""
        seen: list[Event] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                event = await self.recv(remaining)
            except TimeoutError:
                raise timeout_symptom(seen, timeout, symptom) from None
            seen.append(event)
            if predicate(event) or isinstance(event, Closed):
                return seen

    async def drain(self, seconds: float) -> list[Event]:
        """Every event that arrives within ``seconds`` (stops early at a close)."""
        seen: list[Event] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = await self.recv(remaining)
            except TimeoutError:
                break
            seen.append(event)
            if isinstance(event, Closed):
                break
        return seen

    async def close(self, code: int = 1000, reason: str = "") -> Closed:
        """Close and return the close as seen from here (the server's answering code)."""
        if self.closed_event is None:
            await self.ws.close(code, reason)
            try:
                while True:  # consume what was in flight, then the close
                    frame = await self.ws.recv()
                    self._pending.extend(decode_frame(self.codec, frame, self.history))
            except ConnectionClosed as exc:
                self._on_closed(exc)
        assert self.closed_event is not None
        return self.closed_event

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (what a crashed client looks like)."""
        self.ws.transport.abort()

    def _on_closed(self, exc: ConnectionClosed) -> None:
        code, reason = close_info(exc)
        events = self.codec.close_events(code, reason)
        if self.history is not None:
            for event in events:
                self.history.add_event(event)
        self._pending.extend(events)
        self.closed_event = next(e for e in events if isinstance(e, Closed))

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.closed_event is None:
            self.ws.transport.abort()


async def open_stream(
    codec: Codec,
    target: StreamTarget,
    session: SessionInfo,
    *,
    last_segment_id: int | None = None,
    resume_offset: int | None = None,
    history: History | None = None,
    open_timeout: float = 10.0,
    attempt: int = 0,
    allow_remote: bool = False,
    headers: dict[str, str] | None = None,
) -> AsyncStream:
    """Open one stream connection (recorded as connect / connected / connect_failed). ``headers``
    replace the codec's (e.g. to present a wrong credential). Raises StreamConnectError."""
    require_loopback_target(target, allow_remote)
    request = codec.connect_request(target, session, resume_offset=resume_offset, last_segment_id=last_segment_id)
    if history is not None:
        history.add("connect", attempt=attempt, url=request.url, last_segment_id=last_segment_id)
    transports.prepare(request)
    start = time.monotonic()
    try:
        ws = await transports.connect(request, headers, open_timeout=open_timeout)
    except (OSError, TimeoutError, WebSocketException) as exc:
        error, status = handshake_failure(exc)
        if history is not None:
            history.add("connect_failed", attempt=attempt, error=error, status=status)
        raise StreamConnectError(request.url, error, status) from exc
    latency_ms = (time.monotonic() - start) * 1000
    if history is not None:
        history.add("connected", attempt=attempt, latency_ms=round(latency_ms, 3))
    for frame in opening_frames(codec):  # what the protocol says first (StartRecognition ...)
        await ws.send(frame)
        if history is not None:
            history.add("control_sent", message=OPENING)
    return AsyncStream(ws, codec, history, latency_ms)
