"""The blocking driver: the same :class:`~harness.drivers.session.SessionCore` over httpx's sync
client and ``websockets.sync.client``. Made for Locust, which runs users as gevent greenlets: no
asyncio, every call blocking with a timeout, and ``time.sleep`` looked up at call time so gevent's
monkey-patched sleep is the one used.

One loop per session: before each decision it drains the frames that have already arrived
(``recv(timeout=0)``), and a wait is a ``recv`` with a timeout, so acks and gap errors are seen
between paced sends without a thread of our own (websockets' sync client reads in the background).
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from harness.drivers._common import (
    WS_OPTIONS,
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
from harness.errors import UsageError
from harness.protocols.base import (
    Codec,
    ConnectRequest,
    HttpRequest,
    SessionInfo,
    SessionParams,
    StreamTarget,
    opening_frames,
)
from harness.protocols.events import Closed, Event



def require_websocket(request: ConnectRequest) -> None:
    """The blocking driver speaks WebSocket only; a TCP or Socket.IO stream is the asyncio driver's."""
    if request.transport != "websocket":
        raise UsageError(f"the blocking (Locust) driver streams over WebSocket only; {request.url} is a "
                         f"{request.transport} stream: run it with the asyncio driver (harness run)")

class SyncSessionClient:
    """Run one session end to end, blocking: ``outcome = SyncSessionClient(codec, target, plan).run()``."""

    def __init__(
        self,
        codec: Codec,
        target: StreamTarget,
        plan: SessionPlan,
        history: History | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.core = SessionCore(codec, target, plan, history)
        self.target = target
        self._http = http
        self._ws: ClientConnection | None = None

    @property
    def history(self) -> History:
        return self.core.history

    def run(self) -> SessionOutcome:
        own_http = self._http is None
        http = self._http or httpx.Client(trust_env=False)
        try:
            self._loop(http)
        finally:
            if self._ws is not None:
                _abort(self._ws)
                self._ws = None
            if own_http:
                http.close()
        return self.core.outcome()

    def _loop(self, http: httpx.Client) -> None:
        core = self.core
        while True:
            self._drain()
            action = core.next_action(time.monotonic())
            if isinstance(action, Done):
                return
            if isinstance(action, HttpCall):
                self._http_call(http, action)
            elif isinstance(action, Connect):
                self._connect(action)
            elif isinstance(action, (SendAudio, SendControl)):
                self._send(action)
            elif isinstance(action, Wait):
                self._wait(action.until)
            elif isinstance(action, CloseStream):
                self._close(action)

    def _http_call(self, http: httpx.Client, call: HttpCall) -> None:
        req = call.request
        start = time.monotonic()
        try:
            resp = http.request(req.method, self.target.http_base + req.path, headers=req.headers, json=req.json,
                                timeout=max(0.001, call.timeout_s))
        except httpx.HTTPError as exc:
            self.core.now = time.monotonic()
            self.core.on_http_failed(call, f"{type(exc).__name__}: {exc}", (self.core.now - start) * 1000)
            return
        self.core.now = time.monotonic()
        body = parse_body(resp.content, resp.headers.get("content-type"))
        self.core.on_http_response(call, resp.status_code, body, dict(resp.headers), (self.core.now - start) * 1000)

    def _connect(self, action: Connect) -> None:
        require_websocket(action.request)
        start = time.monotonic()
        try:
            ws = connect(action.request.url, additional_headers=action.request.headers,
                         subprotocols=list(action.request.subprotocols) or None,
                         open_timeout=max(0.001, action.timeout_s), legacy=True, **WS_OPTIONS)
        except (OSError, TimeoutError, WebSocketException) as exc:
            self.core.now = time.monotonic()
            error, status = handshake_failure(exc)
            self.core.on_connect_failed(error, status, action.attempt)
            return
        self.core.now = time.monotonic()
        self._ws = ws
        self.core.on_connected((self.core.now - start) * 1000, action.attempt)

    def _frame(self, timeout: float) -> bool:
        """Receive one frame within ``timeout`` and hand it to the core. False on timeout or close."""
        assert self._ws is not None
        try:
            frame = self._ws.recv(timeout=timeout)
        except TimeoutError:
            return False
        except ConnectionClosed as exc:
            self._closed(exc)
            return False
        self.core.now = time.monotonic()
        self.core.on_frame(frame)
        return True

    def _drain(self) -> None:
        """Everything that has already arrived (bounded by what is queued)."""
        while self._ws is not None and self._frame(0):
            pass

    def _closed(self, exc: ConnectionClosed | None) -> None:
        code, reason = close_info(exc)
        self._ws = None
        self.core.now = time.monotonic()
        self.core.on_closed(code, reason)

    def _send(self, action: SendAudio | SendControl) -> None:
        if self._ws is None:
            return
        try:
            self._ws.send(action.frame)
        except ConnectionClosed as exc:
            self._closed(exc)
            return
        self.core.now = time.monotonic()
        self.core.on_sent(action)

    def _wait(self, until: float) -> None:
        delay = max(0.0, until - time.monotonic())
        if self._ws is None:
            time.sleep(delay)
        else:
            self._frame(delay)

    def _close(self, action: CloseStream) -> None:
        if self._ws is None:
            return
        ws = self._ws
        ws.close(action.code, action.reason)  # returns once the closing handshake is over
        while self._ws is not None and self._frame(0):  # frames queued before the close, then the close
            pass
        if self._ws is not None:  # no close surfaced: report what the connection knows
            self._ws = None
            code = ws.close_code if ws.close_code is not None else 1006
            self.core.now = time.monotonic()
            self.core.on_closed(code, ws.close_reason or "")


def run_session_sync(codec: Codec, target: StreamTarget, plan: SessionPlan, history: History | None = None) -> SessionOutcome:
    return SyncSessionClient(codec, target, plan, history).run()


def _abort(ws: ClientConnection) -> None:
    try:
        ws.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    ws.socket.close()


# --- lower-level pieces ----------------------------------------------------------------------


def http_request(
    target: StreamTarget,
    request: HttpRequest,
    *,
    history: History | None = None,
    http: httpx.Client | None = None,
    timeout_s: float = 10.0,
    allow_remote: bool = False,
) -> HttpResponse:
    """Blocking twin of :func:`harness.drivers.asyncio_driver.http_request`."""
    require_loopback_target(target, allow_remote)
    client = http or httpx.Client(trust_env=False)
    start = time.monotonic()
    try:
        resp = client.request(request.method, target.http_base + request.path, headers=request.headers,
                              json=request.json, timeout=timeout_s)
    except httpx.HTTPError as exc:
        record_http(history, request, None, (time.monotonic() - start) * 1000, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if http is None:
            client.close()
    latency_ms = (time.monotonic() - start) * 1000
    record_http(history, request, resp.status_code, latency_ms, None)
    return HttpResponse(resp.status_code, parse_body(resp.content, resp.headers.get("content-type")),
                        dict(resp.headers), latency_ms)


def create_session(
    codec: Codec,
    target: StreamTarget,
    params: SessionParams,
    *,
    history: History | None = None,
    http: httpx.Client | None = None,
    timeout_s: float = 10.0,
    allow_remote: bool = False,
) -> SessionInfo:
    """Blocking twin of :func:`harness.drivers.asyncio_driver.create_session`."""
    request = codec.create_session_request(target, params)
    if request is None:
        return codec.local_session(params)
    resp = http_request(target, request, history=history, http=http, timeout_s=timeout_s, allow_remote=allow_remote)
    session = codec.parse_session_created(resp.status, resp.body, resp.headers, params)
    if history is not None and history.session_id is None:
        history.session_id = session.session_id
    return session


class SyncStream:
    """Blocking twin of :class:`harness.drivers.asyncio_driver.AsyncStream`."""

    def __init__(self, ws: ClientConnection, codec: Codec, history: History | None, latency_ms: float) -> None:
        self.ws, self.codec, self.history = ws, codec, history
        self.connect_latency_ms = latency_ms
        self._pending: deque[Event] = deque()
        self.closed_event: Closed | None = None

    @property
    def closed(self) -> bool:
        return self.closed_event is not None

    def send_audio(self, offset: int, pcm: bytes) -> None:
        self.ws.send(self.codec.encode_audio(offset, pcm))
        if self.history is not None:
            self.history.add("audio_sent", offset=offset, length=len(pcm))

    def send_control(self, kind: str) -> None:
        frame = self.codec.encode_control(kind)
        if frame is None:
            raise ValueError(f"protocol {self.codec.name!r} has no {kind!r} message; close the stream instead")
        self.ws.send(frame)
        if self.history is not None:
            self.history.add("control_sent", message=kind)

    def send_raw(self, frame: bytes | str) -> None:
        self.ws.send(frame)
        if self.history is not None:
            self.history.add("control_sent", message="raw", binary=isinstance(frame, bytes), length=len(frame))

    def recv(self, timeout: float = 5.0) -> Event:
        if self._pending:
            return self._pending.popleft()
        if self.closed_event is not None:
            return self.closed_event
        try:
            frame = self.ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            self._on_closed(exc)
            return self._pending.popleft()
        self._pending.extend(decode_frame(self.codec, frame, self.history))
        return self._pending.popleft() if self._pending else self.recv(timeout)

    def recv_until(self, predicate: Callable[[Event], bool], timeout: float = 10.0,
                   symptom: Callable[[list[Event]], str] | None = None) -> list[Event]:
        """As the asyncio driver's: ScenarioTimeout naming what did not happen within ``timeout``."""
        seen: list[Event] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                event = self.recv(remaining)
            except TimeoutError:
                raise timeout_symptom(seen, timeout, symptom) from None
            seen.append(event)
            if predicate(event) or isinstance(event, Closed):
                return seen

    def drain(self, seconds: float) -> list[Event]:
        seen: list[Event] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self.recv(remaining)
            except TimeoutError:
                break
            seen.append(event)
            if isinstance(event, Closed):
                break
        return seen

    def close(self, code: int = 1000, reason: str = "") -> Closed:
        if self.closed_event is None:
            self.ws.close(code, reason)
            try:
                while True:
                    frame = self.ws.recv(timeout=0)
                    self._pending.extend(decode_frame(self.codec, frame, self.history))
            except ConnectionClosed as exc:
                self._on_closed(exc)
            except TimeoutError:
                code_, reason_ = self.ws.close_code, self.ws.close_reason
                self._record_close(code_ if code_ is not None else 1006, reason_ or "")
        assert self.closed_event is not None
        return self.closed_event

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        _abort(self.ws)

    def _on_closed(self, exc: ConnectionClosed) -> None:
        self._record_close(*close_info(exc))

    def _record_close(self, code: int, reason: str) -> None:
        events = self.codec.close_events(code, reason)
        if self.history is not None:
            for event in events:
                self.history.add_event(event)
        self._pending.extend(events)
        self.closed_event = next(e for e in events if isinstance(e, Closed))

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.closed_event is None:
            _abort(self.ws)


def open_stream(
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
) -> SyncStream:
    """Blocking twin of :func:`harness.drivers.asyncio_driver.open_stream`."""
    require_loopback_target(target, allow_remote)
    request = codec.connect_request(target, session, resume_offset=resume_offset, last_segment_id=last_segment_id)
    require_websocket(request)
    if history is not None:
        history.add("connect", attempt=attempt, url=request.url, last_segment_id=last_segment_id)
    start = time.monotonic()
    try:
        ws = connect(request.url, additional_headers=request.headers if headers is None else headers,
                     subprotocols=list(request.subprotocols) or None, open_timeout=open_timeout, legacy=True, **WS_OPTIONS)
    except (OSError, TimeoutError, WebSocketException) as exc:
        error, status = handshake_failure(exc)
        if history is not None:
            history.add("connect_failed", attempt=attempt, error=error, status=status)
        raise StreamConnectError(request.url, error, status) from exc
    latency_ms = (time.monotonic() - start) * 1000
    if history is not None:
        history.add("connected", attempt=attempt, latency_ms=round(latency_ms, 3))
    for frame in opening_frames(codec):  # what the protocol says first (StartRecognition ...)
        ws.send(frame)
        if history is not None:
            history.add("control_sent", message=OPENING)
    return SyncStream(ws, codec, history, latency_ms)
