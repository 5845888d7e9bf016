"""A WebSocket-aware fault proxy: faults a TCP proxy cannot make, on chosen messages.

Toxiproxy sees bytes; this proxy sees messages. It accepts the client's WebSocket, opens one to
the upstream with the same path, query, auth headers and offered subprotocols, relays messages
both ways and close codes back, and passes every message through its rules. A rule is one small
type behind one interface (as Toxiproxy's toxics are): drop, duplicate, delay, reorder or hold
back chosen messages in either direction, close the client's connection with a chosen code, or
stop answering the server's pings. Each rule records a :class:`~harness.history.FaultWindow` in
the attached histories from the first time it acts until it is done (or removed).

Directions use Toxiproxy's names: ``upstream`` is client -> server, ``downstream`` server -> client.
A message's ``kind`` is ``binary`` for a binary frame, the JSON ``type`` of a text frame
(``final``, ``ack``, ``Results`` …) or ``text`` for other text.

Loopback only: the proxy listens on 127.0.0.1 and refuses a non-loopback upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Opcode
from websockets.frames import EXTERNAL_CLOSE_CODES
from websockets.http11 import Request, Response
from websockets.protocol import State

from harness.faults import vendors
from harness.faults.proxy_record import ConnectionRecord, ProxyRecord
from harness.history import FaultWindow, History
from harness.safety import require_loopback

UPSTREAM = "upstream"  # client -> server
DOWNSTREAM = "downstream"  # server -> client
DIRECTIONS = (UPSTREAM, DOWNSTREAM)

# Headers of the handshake itself: the upstream connection makes its own.
_HANDSHAKE_HEADERS = frozenset({
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "content-length", "transfer-encoding",
})
# Codes a close frame may not carry: relayed as an abort (1006) or a plain close.
_UNSENDABLE = {1005, 1006, 1015}
CONN_HEADER = "X-Fault-Proxy-Conn"
RECORD_PATH = "/_faults/connections"  # GET (plain HTTP) on the proxy's port: its record as JSON
METRICS_PATH = "/_faults/metrics"  # GET: per-protocol counters (connections, refusals, audio bytes, faults fired)
MAX_LINKS_KEPT = 64


def _check_schedule(schedule: Any) -> None:
    """Refused before anything listens: a step the proxy cannot run per connection."""
    for step in schedule:
        if not hasattr(step.fault, "make_rule"):
            raise ValueError(f"fault {step.fault.name!r} ({step.fault.layer} layer) cannot run in the WebSocket fault "
                             f"proxy: only wsproxy-layer faults act per connection")
        if isinstance(step.fault.make_rule(), RefuseHandshake) and step.at.key != "connect":
            raise ValueError(f"fault {step.fault.name!r} refuses the handshake: its trigger must be 'connect', "
                             f"not {step.at.describe()!r}")


# --- messages and matching --------------------------------------------------------------------
@dataclass
class Message:
    """One relayed message and what rules match on."""

    data: str | bytes
    direction: str
    kind: str
    obj: dict[str, Any] | None = None

    @classmethod
    def parse(cls, data: str | bytes, direction: str) -> Message:
        if isinstance(data, bytes):
            return cls(data, direction, "binary")
        try:
            obj = json.loads(data)
        except ValueError:
            return cls(data, direction, "text")
        if not isinstance(obj, dict):
            return cls(data, direction, "text")
        return cls(data, direction, vendors.message_kind(obj) or "text", obj)


@dataclass
class Match:
    """Which messages a rule acts on: of ``kind`` (None: any) whose JSON fields equal ``where``
    (with ``final``: only finals, of whichever protocol, see :mod:`harness.faults.vendors`); from
    the ``nth`` such message (1-based) for ``count`` messages (None: every one from there).
    Counting runs over the rule's whole life: across reconnects for a rule of the whole proxy,
    one connection for a scheduled rule."""

    kind: str | None = None
    where: dict[str, Any] = field(default_factory=dict)
    nth: int = 1
    count: int | None = 1
    seen: int = 0
    final: bool = False

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise ValueError(f"Match.nth is 1-based, got {self.nth}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"Match.count must be >= 1 or None (every one), got {self.count}")

    def matches(self, msg: Message) -> bool:
        if self.kind is not None and msg.kind != self.kind:
            return False
        if self.final and not vendors.is_final(msg.obj):
            return False
        if self.where and (msg.obj is None or any(msg.obj.get(k) != v for k, v in self.where.items())):
            return False
        return True

    def take(self, msg: Message) -> bool:
        """True if this rule should act on ``msg`` (counts it when it matches)."""
        if not self.matches(msg):
            return False
        self.seen += 1
        return self.seen >= self.nth and (self.count is None or self.seen < self.nth + self.count)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.seen >= self.nth + self.count - 1

    def describe(self) -> dict[str, Any]:
        out = {"kind": self.kind, "where": dict(self.where), "nth": self.nth, "count": self.count}
        if self.final:
            out["final"] = True
        return out


# --- rules ------------------------------------------------------------------------------------
class Rule:
    """The interface: ``handle`` a message (return True if the rule took it over), ``flush`` what
    it holds when the direction ends, and record its window while it acts. A rule with
    ``on_link`` acts on a connection as a whole (close it, cut it …): ``arm(link)`` is called on
    the current connection when it is added (or on the next one)."""

    kind: ClassVar[str] = "rule"
    on_link: ClassVar[bool] = False

    def __init__(self, direction: str, match: Match | None = None):
        if direction not in DIRECTIONS:
            raise ValueError(f"rule direction must be 'upstream' or 'downstream', got {direction!r}")
        self.direction = direction
        self.match = match or Match()
        self.fired = 0
        self.windows: list[FaultWindow] = []
        self.proxy: WsFaultProxy | None = None
        self.link: Link | None = None
        # where windows go (histories, connection records); None: the proxy's histories
        self.sinks: list[Any] | None = None
        self.window_kind = f"ws_{self.kind}"

    def params(self) -> dict[str, Any]:
        return {"direction": self.direction, "match": self.match.describe()}

    # window bookkeeping
    def _begin(self) -> None:
        if not self.windows and self.proxy is not None:
            sinks = self.proxy.histories if self.sinks is None else self.sinks
            self.windows = [h.start_fault(self.window_kind, target=f"wsproxy:{self.proxy.port}", **self.params())
                            for h in sinks]

    def arm(self, link: Link) -> None:
        """An ``on_link`` rule starts acting on ``link``."""

    def observe(self, msg: Message) -> None:
        """An earlier rule took ``msg``: count it all the same, so that the nth is the server's nth."""
        if msg.direction == self.direction and self.match.matches(msg):
            self.match.seen += 1

    def _end(self) -> None:
        for w in self.windows:
            w.params["fired"] = self.fired
            History.end_fault(w)

    @property
    def active(self) -> bool:
        return bool(self.windows) and self.windows[0].end_ns is None

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        if msg.direction != self.direction or not self.match.take(msg):
            return False
        self._begin()
        self.fired += 1
        taken = self.act(msg, pipe)
        if self.match.exhausted and not self.pending():
            self._end()
        return taken

    def act(self, msg: Message, pipe: Pipe) -> bool:
        raise NotImplementedError

    def pending(self) -> bool:
        """True while the rule still holds messages it will send later."""
        return False

    def flush(self, pipe: Pipe) -> None:
        """The direction is ending: send what is held (nothing is kept back for ever)."""

    def stop(self) -> None:
        """Removed from the proxy: end the window."""
        if self.windows:
            self._end()


class Drop(Rule):
    """Chosen messages are not delivered (a final lost, an audio frame lost)."""

    kind = "drop"

    def act(self, msg: Message, pipe: Pipe) -> bool:
        pipe.link.dropped(msg)
        return True


class Duplicate(Rule):
    """Chosen messages are delivered ``copies`` extra times, back to back."""

    kind = "duplicate"

    def __init__(self, direction: str, match: Match | None = None, copies: int = 1):
        super().__init__(direction, match)
        if copies < 1:
            raise ValueError(f"Duplicate.copies must be >= 1, got {copies}")
        self.copies = copies

    def params(self) -> dict[str, Any]:
        return {**super().params(), "copies": self.copies}

    def act(self, msg: Message, pipe: Pipe) -> bool:
        for _ in range(1 + self.copies):
            pipe.emit(msg.data)
        return True


class Delay(Rule):
    """Chosen messages wait ``delay_s`` before delivery, and everything behind them waits too
    (order is kept: a stalled pipe, not a reordering)."""

    kind = "delay"

    def __init__(self, direction: str, match: Match | None = None, delay_s: float = 0.5):
        super().__init__(direction, match)
        if delay_s < 0:
            raise ValueError(f"Delay.delay_s must be >= 0, got {delay_s}")
        self.delay_s = delay_s
        self._in_flight = 0

    def params(self) -> dict[str, Any]:
        return {**super().params(), "delay_ms": round(self.delay_s * 1000)}

    def act(self, msg: Message, pipe: Pipe) -> bool:
        self._in_flight += 1

        def sent() -> None:
            self._in_flight -= 1
            if self.match.exhausted and not self._in_flight:
                self._end()

        pipe.emit(msg.data, delay_s=self.delay_s, on_sent=sent)
        return True

    def pending(self) -> bool:
        return self._in_flight > 0


class Reorder(Rule):
    """A chosen message is held until ``after`` later messages of its direction went through
    (or ``max_hold_s`` passed), then delivered: the order is broken, nothing is lost."""

    kind = "reorder"

    def __init__(self, direction: str, match: Match | None = None, after: int = 1, max_hold_s: float = 5.0):
        super().__init__(direction, match)
        if after < 1:
            raise ValueError(f"Reorder.after must be >= 1, got {after}")
        self.after = after
        self.max_hold_s = max_hold_s
        self._held: list[list[Any]] = []  # [data, messages still to let pass, timer]

    def params(self) -> dict[str, Any]:
        return {**super().params(), "after": self.after}

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        if msg.direction != self.direction:
            return False
        if self.match.take(msg):
            self._begin()
            self.fired += 1
            return self.act(msg, pipe)
        if self._held:  # a message overtaking the held ones
            pipe.emit(msg.data)
            self._count_down(pipe)
            return True
        return False

    def act(self, msg: Message, pipe: Pipe) -> bool:
        entry: list[Any] = [msg.data, self.after, None]
        entry[2] = asyncio.get_running_loop().call_later(self.max_hold_s, self._release, entry, pipe)
        self._held.append(entry)
        return True

    def _count_down(self, pipe: Pipe) -> None:
        for entry in list(self._held):
            entry[1] -= 1
            if entry[1] <= 0:
                self._release(entry, pipe)

    def _release(self, entry: list[Any], pipe: Pipe) -> None:
        if entry in self._held:
            self._held.remove(entry)
            entry[2].cancel()
            pipe.emit(entry[0])
        if self.match.exhausted and not self._held:
            self._end()

    def pending(self) -> bool:
        return bool(self._held)

    def flush(self, pipe: Pipe) -> None:
        for entry in list(self._held):
            self._release(entry, pipe)


class HoldBack(Rule):
    """Every chosen message is held from the first one on, for ``duration_s``; then all of them
    are delivered in order (acks held back, say). Other messages pass meanwhile."""

    kind = "hold"

    def __init__(self, direction: str, match: Match | None = None, duration_s: float = 2.0):
        super().__init__(direction, match or Match(count=None))
        self.duration_s = duration_s
        self._held: list[str | bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._released = False

    def params(self) -> dict[str, Any]:
        return {**super().params(), "duration_ms": round(self.duration_s * 1000)}

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        if self._released:
            return False
        return super().handle(msg, pipe)

    def act(self, msg: Message, pipe: Pipe) -> bool:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.duration_s, self._release, pipe)
        self._held.append(msg.data)
        return True

    def _release(self, pipe: Pipe) -> None:
        if self._released:
            return
        self._released = True
        if self._timer:
            self._timer.cancel()
        for data in self._held:
            pipe.emit(data)
        self._held.clear()
        for w in self.windows:
            w.params["released"] = True
        self._end()

    def pending(self) -> bool:
        return bool(self._held) or (self._timer is not None and not self._released)

    def flush(self, pipe: Pipe) -> None:
        if self._timer is not None:
            self._release(pipe)


class CloseWith(Rule):
    """At the chosen message, the client's connection is closed with ``code`` as if the server
    had closed it (1001 shutting down, 1011 internal error …), and the upstream connection is
    dropped (closed 1001). The matched message is not delivered unless ``deliver`` is set."""

    kind = "close"

    def __init__(self, code: int, reason: str = "", direction: str = DOWNSTREAM, match: Match | None = None,
                 deliver: bool = False):
        super().__init__(direction, match)
        if not (code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000):
            raise ValueError(f"CloseWith.code {code} cannot be sent in a close frame")
        self.code, self.reason, self.deliver = code, reason, deliver

    def params(self) -> dict[str, Any]:
        return {**super().params(), "code": self.code, "reason": self.reason}

    def act(self, msg: Message, pipe: Pipe) -> bool:
        if self.deliver:
            pipe.emit(msg.data)
        pipe.link.force_close(self.code, self.reason)
        return True


class StopAnsweringPings(Rule):
    """The client goes silent: the proxy's upstream side stops answering the server's pings and,
    with ``silence_client``, stops forwarding the client's messages, while its TCP connection
    stays open. It starts on the current connection when added (or on the next one). The window
    ends when the server drops the connection (``server_close_code`` records how) or on removal."""

    kind = "no_pong"
    on_link = True

    def __init__(self, silence_client: bool = True):
        super().__init__(UPSTREAM, Match(count=None))
        self.silence_client = silence_client

    def params(self) -> dict[str, Any]:
        return {"direction": self.direction, "silence_client": self.silence_client}

    def arm(self, link: Link) -> None:
        self._begin()
        self.link = link
        link.block_pongs = True
        link.on_upstream_closed.append(self._server_gave_up)

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        if self.link is not None and pipe.link is self.link and msg.direction == UPSTREAM:
            self.fired += 1
            return self.silence_client
        return False

    def _server_gave_up(self, code: int | None, reason: str | None) -> None:
        for w in self.windows:
            w.params["server_close_code"] = code
            w.params["server_close_reason"] = reason
        self._end()

    def stop(self) -> None:
        if self.link is not None:
            self.link.block_pongs = False
        super().stop()


class SendThenClose(Rule):
    """What a failing vendor does: the connection stays accepted, then ``frames`` (the vendor's
    error message, if it sends one) go to the client after what is already queued, then the
    client's connection is closed with ``code`` and ``reason``. Nothing more is relayed either
    way once it fires; the upstream connection is closed 1001."""

    kind = "send_then_close"
    on_link = True

    def __init__(self, code: int, reason: str = "", frames: Sequence[str] = ()):
        super().__init__(DOWNSTREAM, Match(count=None))
        if not (code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000):
            raise ValueError(f"close code {code} cannot be sent in a close frame")
        if len(reason.encode()) > 123:
            raise ValueError(f"a close reason is at most 123 bytes, got {len(reason.encode())}: {reason!r}")
        self.code, self.reason, self.frames = code, reason, list(frames)

    def params(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "frames": len(self.frames)}

    def arm(self, link: Link) -> None:
        if self.link is not None:
            return
        self.link = link
        self._begin()
        self.fired += 1
        link.close_after(self.frames, self.code, self.reason, on_closing=self._end)

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        return False


class Stall(Rule):
    """The vendor goes quiet: the socket stays open (pings are answered), nothing the server sends
    reaches the client any more, while the client's audio still goes through."""

    kind = "stall"
    on_link = True

    def __init__(self) -> None:
        super().__init__(DOWNSTREAM, Match(count=None))

    def params(self) -> dict[str, Any]:
        return {"direction": self.direction}

    def arm(self, link: Link) -> None:
        if self.link is None:
            self.link = link
            self._begin()

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        if msg.direction != DOWNSTREAM or (self.link is not None and pipe.link is not self.link):
            return False
        self._begin()
        self.fired += 1
        pipe.link.dropped(msg)
        return True


class Cut(Rule):
    """The TCP connection cut, no close frame either way (a crashed vendor, a dead NAT): the
    client sees 1006."""

    kind = "cut"
    on_link = True

    def __init__(self) -> None:
        super().__init__(DOWNSTREAM, Match(count=None))

    def params(self) -> dict[str, Any]:
        return {}

    def arm(self, link: Link) -> None:
        if self.link is not None:
            return
        self.link = link
        self._begin()
        self.fired += 1
        link.cut()
        self._end()

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        return False


class RefuseHandshake(Rule):
    """The handshake refused with ``status``, ``body`` and ``headers`` (``Retry-After`` …): the
    connection never reaches the server. Every handshake while the rule is on the proxy."""

    kind = "refuse_handshake"

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        super().__init__(UPSTREAM, Match(count=None))
        if not 400 <= status <= 599:
            raise ValueError(f"a refused handshake needs an HTTP error status (400-599), got {status}")
        self.status, self.body, self.headers = status, body, dict(headers or {})

    def params(self) -> dict[str, Any]:
        return {"status": self.status, **({"retry_after": self.headers["Retry-After"]}
                                          if "Retry-After" in self.headers else {})}

    def handle(self, msg: Message, pipe: Pipe) -> bool:
        return False

    def response(self, extra_sinks: Sequence[Any] = ()) -> Response:
        self.fired += 1
        if self.proxy is not None:  # one instant window per refused handshake
            for sink in [*(self.proxy.histories if self.sinks is None else self.sinks), *extra_sinks]:
                w = sink.start_fault(self.window_kind, target=f"wsproxy:{self.proxy.port}", **self.params())
                History.end_fault(w)
                self.windows.append(w)
        headers = Headers(self.headers)
        headers.setdefault("Content-Type", "application/json" if self.body.startswith((b"{", b"[")) else "text/plain")
        headers["Content-Length"] = str(len(self.body))
        return Response(self.status, _REASONS.get(self.status, "Error"), headers, self.body)


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


# --- the relay ----------------------------------------------------------------------------------
class Pipe:
    """One direction of one link: an ordered queue of messages to write to ``dst``."""

    def __init__(self, link: Link, direction: str, dst: ClientConnection | ServerConnection):
        self.link = link
        self.direction = direction
        self.dst = dst
        self.queue: asyncio.Queue[tuple[float, str | bytes, Any] | None] = asyncio.Queue()

    def emit(self, data: str | bytes, delay_s: float = 0.0, on_sent: Any = None) -> None:
        self.queue.put_nowait((delay_s, data, on_sent))

    def then(self, action: Any) -> None:
        """Call ``action()`` once everything queued before it was written."""
        self.queue.put_nowait((0.0, None, action))

    async def writer(self) -> None:
        while (item := await self.queue.get()) is not None:
            delay_s, data, on_sent = item
            if delay_s:
                await asyncio.sleep(delay_s)
            try:
                if data is not None:
                    await self.dst.send(data)
                    self.link.record.count(self.direction, "sent")
            except ConnectionClosed:
                pass  # the message is lost with the connection, as it would be on the wire
            except Exception as exc:
                self.link.proxy.errors.append(f"{self.direction} send failed: {exc!r}")
            finally:
                if on_sent:
                    on_sent()


class Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: WsFaultProxy, client: ServerConnection, upstream: ClientConnection,
                 record: ConnectionRecord | None = None):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.record = record or ConnectionRecord(index=0)
        self.rules: list[Rule] = []  # this connection's own (scheduled) rules, before the proxy's
        self.pending: list[tuple[Any, Rule]] = []  # scheduled (step, rule) not yet started
        self.block_pongs = False
        self.on_upstream_closed: list[Any] = []
        self.forced: tuple[int, str] | None = None
        self.to_server = Pipe(self, UPSTREAM, upstream)
        self.to_client = Pipe(self, DOWNSTREAM, client)
        self._install_pong_filter()

    def _install_pong_filter(self) -> None:
        # websockets answers pings inside its sans-I/O protocol (Protocol.recv_frame calls
        # send_frame(PONG)) and offers no switch to turn that off; filtering PONG frames on this
        # one connection's protocol object is the narrowest way to play a client that stopped
        # answering while its TCP connection stays open.
        protocol = self.upstream.protocol
        send_frame = protocol.send_frame

        def filtered(frame: Any) -> None:
            if self.block_pongs and frame.opcode is Opcode.PONG:
                self.proxy.pongs_withheld += 1
                return
            send_frame(frame)

        protocol.send_frame = filtered  # type: ignore[method-assign]

    @property
    def open(self) -> bool:
        return self.upstream.state is State.OPEN and self.client.state is State.OPEN

    def force_close(self, code: int, reason: str) -> None:
        if self.forced is None:
            self.forced = (code, reason)
            asyncio.get_running_loop().create_task(self._forced_close(code, reason))

    def close_after(self, frames: Sequence[str], code: int, reason: str, on_closing: Any = None) -> None:
        """Send ``frames`` to the client after what is queued, then close it ``code``; from now on
        nothing more is relayed either way."""
        if self.forced is not None:
            return
        self.forced = (code, reason)
        for frame in frames:
            self.to_client.emit(frame)
        loop = asyncio.get_running_loop()
        self.to_client.then(lambda: loop.create_task(self._forced_close(code, reason, on_closing)))

    def cut(self) -> None:
        """Both TCP connections aborted: no close frame to anyone."""
        if self.forced is None:
            self.forced = (1006, "cut")
        self.record.closed(1006, "cut", None)
        for conn in (self.client, self.upstream):
            conn.transport.abort()

    def dropped(self, msg: Message) -> None:
        self.record.count(msg.direction, "dropped")

    async def _forced_close(self, code: int, reason: str, on_closing: Any = None) -> None:
        if on_closing is not None:  # before the close frame goes: the client cannot see it first
            on_closing()
        self.record.closed(code, reason, None)
        await asyncio.gather(self.client.close(code, reason), self.upstream.close(1001, "proxy closed the client"),
                             return_exceptions=True)

    # --- the schedule's steps on this connection ---------------------------------------
    def check_schedule(self) -> None:
        """Start every pending step whose trigger this connection has reached."""
        if not self.pending or self.forced is not None:
            return
        for step, rule in list(self.pending):
            if step.at.reached(self.record):
                self.pending.remove((step, rule))
                self._start(step, rule)
                if self.forced is not None:
                    return

    def _start(self, step: Any, rule: Rule) -> None:
        rule.proxy = self.proxy
        rule.sinks = [self.record, *self.proxy.histories]
        self.rules.append(rule)
        if rule.on_link:
            rule.arm(self)
        if step.duration_ms is not None:
            asyncio.get_running_loop().call_later(step.duration_ms / 1000, self._stop_rule, rule)

    def _stop_rule(self, rule: Rule) -> None:
        if rule in self.rules:
            self.rules.remove(rule)
            rule.stop()

    async def _pump(self, src: ClientConnection | ServerConnection, pipe: Pipe) -> None:
        try:
            async for data in src:
                if self.forced:
                    self.record.count(pipe.direction, "dropped")
                    continue
                self.proxy.route(Message.parse(data, pipe.direction), pipe)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a broken rule must not pass for a fault: recorded, the link closed 1011
            self.proxy.errors.append(f"{pipe.direction} relay failed: {exc!r}")
            self.force_close(1011, "wsproxy error")
        finally:
            for rule in [*self.rules, *self.proxy.rules]:
                if rule.direction == pipe.direction:
                    try:
                        rule.flush(pipe)
                    except Exception as exc:
                        self.proxy.errors.append(f"{rule.kind} rule failed to flush: {exc!r}")
            pipe.queue.put_nowait(None)

    async def run(self) -> None:
        writers = [asyncio.create_task(self.to_server.writer()), asyncio.create_task(self.to_client.writer())]
        up = asyncio.create_task(self._pump(self.client, self.to_server))
        down = asyncio.create_task(self._pump(self.upstream, self.to_client))
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down in done:  # the server side ended: deliver what is queued, then the same close
                for cb in self.on_upstream_closed:
                    cb(self.upstream.close_code, self.upstream.close_reason)
                await writers[1]
                await _relay_close(self.client, self.upstream)
            else:
                await writers[0]
                await _relay_close(self.upstream, self.client)
            with contextlib.suppress(TimeoutError):  # the finally below aborts what is left
                await asyncio.wait_for(asyncio.gather(up, down, return_exceptions=True), timeout=15)
        finally:
            for t in (up, down, *writers):
                t.cancel()
            for conn in (self.client, self.upstream):
                if conn.state is not State.CLOSED:
                    conn.transport.abort()
            self.pending.clear()
            for rule in self.rules:
                rule.stop()
            self.rules.clear()
            self.record.closed(self.client.close_code if self.forced != (1006, "cut") else 1006,
                               self.client.close_reason, self.upstream.close_code)


async def _relay_close(dst: ClientConnection | ServerConnection, src: ClientConnection | ServerConnection) -> None:
    """Close ``dst`` the way ``src`` was closed: same code and reason; an abnormal close (no close
    frame, 1006) becomes an aborted TCP connection, which is what it was."""
    code, reason = src.close_code, src.close_reason or ""
    if code is None or code == 1006:
        dst.transport.abort()
    elif code in _UNSENDABLE:
        await dst.close()
    else:
        await dst.close(code, reason)


class WsFaultProxy:
    """Listens on 127.0.0.1:``port`` (0: any free port) and relays to ``upstream`` (``ws://host:port``).

    ``async with WsFaultProxy(target.ws_url, history=h) as proxy:`` then point the stream at
    ``proxy.ws_url`` (the codec's ``stream_base_url``) and ``proxy.add(rule)``.
    """

    def __init__(self, upstream: str, history: History | Sequence[History] | None = None, *, port: int = 0,
                 allow_remote: bool = False, open_timeout_s: float = 10.0, schedule: Any = None,
                 tag_header: str | None = None, max_records: int = 1000):
        parts = urlsplit(upstream)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise ValueError(f"WsFaultProxy upstream must be a ws:// or http:// URL, got {upstream!r}")
        require_loopback(upstream, allow_remote)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        self.upstream = f"{scheme}://{parts.netloc}"
        self.histories: list[History] = [] if history is None else (
            [history] if isinstance(history, History) else list(history))
        self.requested_port = port
        self.port = port
        self.open_timeout_s = open_timeout_s
        self.rules: list[Rule] = []
        self.links: list[Link] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.pongs_withheld = 0
        self.errors: list[str] = []  # the proxy's own failures: a run with any is a harness error
        self.schedule = schedule  # harness.faults.schedule.Schedule: faults per connection
        if schedule is not None:
            _check_schedule(schedule)
        self.tag_header = tag_header
        self.fault_record = ProxyRecord(max_records)
        self._server: Server | None = None
        self._pending: dict[int, ClientConnection] = {}
        self._tasks: set[asyncio.Task] = set()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # --- rules ---------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        rule.proxy = self
        self.rules.append(rule)
        link = self.current_link
        if rule.on_link and link is not None and link.open:
            rule.arm(link)
        return rule

    def remove(self, rule: Rule) -> None:
        if rule in self.rules:
            self.rules.remove(rule)
            rule.stop()

    @contextlib.asynccontextmanager
    async def rule(self, rule: Rule) -> AsyncIterator[Rule]:
        """The rule is active inside the block and removed (its window ended) in finally."""
        self.add(rule)
        try:
            yield rule
        finally:
            self.remove(rule)

    def route(self, msg: Message, pipe: Pipe) -> None:
        key = (msg.direction, msg.kind)
        self.counts[key] = self.counts.get(key, 0) + 1
        link = pipe.link
        link.record.received(msg.direction, msg.data, msg.obj)
        rules = [*link.rules, *self.rules]
        for i, rule in enumerate(rules):
            if rule.handle(msg, pipe):
                for later in rules[i + 1:]:  # "the Nth final" counts what the server sent, taken or not
                    later.observe(msg)
                break
        else:
            pipe.emit(msg.data)
        link.check_schedule()  # after the message: "after 2 s of audio" lets the frame that makes 2 s through

    def count(self, direction: str, kind: str) -> int:
        """Messages of ``kind`` seen (before rules) in ``direction``."""
        return self.counts.get((direction, kind), 0)

    @property
    def current_link(self) -> Link | None:
        return self.links[-1] if self.links else None

    def use_schedule(self, schedule: Any) -> None:
        """Run ``schedule`` (a :class:`~harness.faults.schedule.Schedule`; None: none) on the
        connections that arrive from now on; open ones keep the steps they got. Checked first."""
        if schedule is not None:
            _check_schedule(schedule)
        self.schedule = schedule

    # --- hooks: a subclass that keeps its own record per connection ---------------------
    def upstream_path(self, path: str) -> str:
        """The path and query the handshake carries from here on (to the record and the upstream);
        ``path`` is the client's. A subclass may add to it (a stand-in's own query parameters)."""
        return path

    def link_opened(self, link: Link) -> None:
        """A connection was accepted and its link made, before anything is relayed on it."""

    def link_closed(self, link: Link) -> None:
        """A link is over: both sides closed or aborted, its rules stopped, its record closed."""

    # --- handshake and relay -------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path in (RECORD_PATH, METRICS_PATH) and "upgrade" not in request.headers.get("Connection", "").lower():
            if parts.path == METRICS_PATH:
                body, kind = self.fault_record.prometheus(), "text/plain; version=0.0.4; charset=utf-8"
            else:
                tag = dict(parse_qsl(parts.query)).get("tag")
                body, kind = json.dumps(self.fault_record.to_dict(tag), separators=(",", ":")).encode(), "application/json"
            return Response(200, "OK", Headers({"Content-Type": kind, "Content-Length": str(len(body))}), body)
        request.path = self.upstream_path(request.path)
        parts = urlsplit(request.path)
        query = parse_qsl(parts.query)
        tags = [v for k, v in query if k == "tag"]
        if self.tag_header and request.headers.get(self.tag_header):
            tags.append(request.headers[self.tag_header])
        rec = self.fault_record.open(parts.path, tags, bytes_per_ms=vendors.bytes_per_ms_of_query(parts.path, dict(query)))
        steps = self.schedule.for_connection(rec.index, tags) if self.schedule is not None else []
        pending = [(step, step.fault.make_rule()) for step in steps]
        for step, rule in pending:
            if isinstance(rule, RefuseHandshake):
                rule.proxy, rule.sinks = self, [rec, *self.histories]
                rec.handshake_status = rule.status
                rec.closed(None, None, None)
                return rule.response()
        refusing = next((r for r in self.rules if isinstance(r, RefuseHandshake)), None)
        if refusing is not None:
            rec.handshake_status = refusing.status
            rec.closed(None, None, None)
            return refusing.response(extra_sinks=[rec])
        headers = [(k, v) for k, v in request.headers.raw_items() if k.lower() not in _HANDSHAKE_HEADERS]
        headers.append((CONN_HEADER, f"fp{self.port}-{rec.index}"))  # lets the vendor's record name this connection
        offered = request.headers.get_all("Sec-WebSocket-Protocol")
        subprotocols = [p.strip() for value in offered for p in value.split(",") if p.strip()]
        try:
            upstream = await connect(
                self.upstream + request.path, additional_headers=headers, subprotocols=subprotocols or None,
                compression=None, proxy=None, ping_interval=None, max_size=None, open_timeout=self.open_timeout_s,
                user_agent_header=None,
            )
        except InvalidStatus as exc:  # the server refused: the client gets the same answer
            r = exc.response
            rec.handshake_status = r.status_code
            rec.closed(None, None, None)
            keep = Headers([(k, v) for k, v in r.headers.raw_items()
                            if k.lower() in ("content-type", "retry-after", "www-authenticate")])
            keep["Content-Length"] = str(len(r.body or b""))
            return Response(r.status_code, r.reason_phrase, keep, bytes(r.body or b""))
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            rec.handshake_status = 502
            rec.closed(None, None, None)
            return connection.respond(502, f"wsproxy: upstream {self.upstream} unreachable: {exc!r}\n")
        self._pending[id(connection)] = (upstream, rec, pending)
        return None

    def _select_subprotocol(self, connection: ServerConnection, offered: Sequence[str]) -> str | None:
        pending = self._pending.get(id(connection))
        return pending[0].subprotocol if pending is not None else None

    async def _handler(self, connection: ServerConnection) -> None:
        upstream, rec, steps = self._pending.pop(id(connection))
        rec.handshake_status = 101
        rec.accepted_ns = time.monotonic_ns()
        link = Link(self, connection, upstream, rec)
        self.links.append(link)
        del self.links[:-MAX_LINKS_KEPT]  # a long-running proxy keeps its recent links only
        for rule in self.rules:
            if rule.on_link and rule.link is None:
                rule.arm(link)
        link.pending = steps
        loop = asyncio.get_running_loop()
        for step, _rule in steps:
            if hasattr(step.at, "ms") and step.at.key == "elapsed_ms":
                loop.call_later(step.at.ms / 1000, link.check_schedule)
        self.link_opened(link)
        link.check_schedule()  # the steps due at connect
        try:
            await link.run()
        finally:
            self.link_closed(link)

    async def start(self) -> WsFaultProxy:
        self._server = await serve(
            self._handler, "127.0.0.1", self.requested_port, process_request=self._process_request,
            select_subprotocol=self._select_subprotocol, compression=None, ping_interval=None, max_size=None,
            server_header=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening, drop every link, end every rule's window."""
        for rule in list(self.rules):
            self.remove(rule)
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        for upstream, _rec, _steps in self._pending.values():
            upstream.transport.abort()
        self._pending.clear()
        for link in self.links:
            for conn in (link.client, link.upstream):
                if conn.close_code is None:
                    conn.transport.abort()

    async def __aenter__(self) -> WsFaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = [
    "DOWNSTREAM", "UPSTREAM", "CloseWith", "Delay", "Drop", "Duplicate", "HoldBack", "Match", "Message",
    "Reorder", "Rule", "StopAnsweringPings", "WsFaultProxy",
]
