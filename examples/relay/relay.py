"""An example relay: a small, real service between a client and Deepgram, with planted defects.

Its client side speaks Deepgram's live API (``/v1/listen``: raw PCM frames, ``KeepAlive``,
``Finalize``, ``CloseStream``; ``Results`` and ``Metadata`` back), so any Deepgram client, and the
harness with ``--protocol deepgram``, can stream to it. Its vendor side streams each client session
to Deepgram (``DEEPGRAM_URL``, the reference server's ``/v1/listen`` in the relay suite) with raw
``websockets``. What it does, as a relay in production must:

- one vendor connection per client session, opened on the first audio, with the client's session
  id as Deepgram's ``tag``; the client's other query parameters pass through (``model``,
  ``interim_results`` …);
- every audio frame forwarded as it arrives, in order; audio that arrives while the vendor
  connection is opening or reopening is held (bounded) and sent first when it is up;
- ``KeepAlive`` to the vendor when no audio went to it for ``--keepalive-s`` (Deepgram closes an
  idle connection with 1011 ``NET-0001`` after 10 s);
- a vendor drop (any close the relay did not ask for) is reconnected with bounded backoff; when
  every attempt fails the client is closed 1011 with a reason that says so;
- a stalled vendor (audio going in, no result coming back for ``--result-timeout-s``) is closed
  (4000) and reconnected like a drop;
- the client's ``CloseStream`` sends ``CloseStream`` to the vendor, forwards the last results,
  then ``Metadata``, then closes 1000;
- ``GET /health``: open client sessions and vendor connections, as integers.

The vendor key is held by the relay and never sent to a client. Clients authenticate in one of
two ways, as Deepgram's own API does:

- the service key (``--api-key`` / ``RELAY_API_KEY``): ``Authorization: Token <key>``, for a
  trusted backend;
- a per-session token, for a browser or a phone that must not hold the service key: the backend
  asks ``GET /v1/auth/grant`` (with ``Authorization: Token <key>``) and gets
  ``{"access_token": "...", "expires_in": 30}`` (Deepgram's grant shape; Deepgram's grant is a
  POST, but the websockets HTTP parser this relay answers with reads GET only); the client
  connects with ``Authorization: Bearer <token>``. A token opens ONE session: it is spent by the
  first connection that presents it, so a second client holding it (a leaked or shared token,
  another session's) is refused 401 even while the first session runs, and an unused token
  expires after ``expires_in`` seconds. A client that reconnects asks for a new token.

Anything else (no ``Authorization``, a wrong key, an unknown, spent or expired token) is refused
at the handshake with 401 ``INVALID_AUTH``, before any vendor connection is made.

Planted defects (``--defect NAME``, repeatable, off by default; DEFECTS.md "Relay defects"), each
a bug a real relay shipped, each reproducing its failure by construction:

- ``relay-duplicate-vendor-connection``: every audio chunk that arrives while the vendor
  connection is still opening starts another one (a check-then-act across the handshake), so
  chunks that arrive together open two or more vendor connections for one session.
- ``relay-burst-gaps``: audio is collected and sent by a 500 ms timer after each send and clear:
  the vendor gets bursts with 500 ms gaps.
- ``relay-no-vendor-reconnect``: a vendor drop is not reconnected; the rest of the session's
  audio is dropped.
- ``relay-no-keepalive``: no ``KeepAlive`` while the client is silent.
- ``relay-unbounded-accumulator``: every vendor result, with the audio it followed, is kept for
  the session's life.
- ``relay-health-na``: ``/health`` reports vendor connections as ``"N/A"``.
- ``relay-no-auth``: the credential check is skipped: any client gets a session (and the
  service's vendor key streams for it).
- ``relay-token-reuse``: a session token is checked for being issued and unexpired, not for being
  unspent: another session's token opens a session of its own (what a bearer-JWT check without a
  one-use claim does).
- ``relay-cross-talk``: vendor results go out on one relay-wide channel every client session
  listens on (a pub/sub topic named for the service, not for the session): each client hears the
  other sessions' transcripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import json
import logging
import os
import secrets
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.http11 import Request, Response

log = logging.getLogger("relay")

DEFECTS = (
    "relay-duplicate-vendor-connection",
    "relay-burst-gaps",
    "relay-no-vendor-reconnect",
    "relay-no-keepalive",
    "relay-unbounded-accumulator",
    "relay-health-na",
    "relay-no-auth",
    "relay-token-reuse",
    "relay-cross-talk",
)
TOKEN_TTL_S = 30.0  # an unused session token expires after this long
BURST_TIMER_S = 0.5  # relay-burst-gaps: the flush timer
MAX_HELD_BYTES = 30 * 32000  # audio held while the vendor connection is (re)opening: 30 s
CLIENT_PARAMS_KEPT_BACK = {"tag"}  # the relay sets the tag itself


@dataclass
class Config:
    port: int
    vendor_url: str  # ws://host:port/v1/listen
    vendor_key: str
    api_key: str
    defects: frozenset[str] = frozenset()
    keepalive_s: float = 3.0
    result_timeout_s: float = 3.0
    max_reconnects: int = 5
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 3.0
    host: str = "127.0.0.1"

    def has(self, defect: str) -> bool:
        return defect in self.defects


@dataclass
class Grant:
    """A session token: valid until ``expires`` (monotonic), for one connection."""

    expires: float
    spent: bool = False


@dataclass
class Counters:
    """What ``/health`` reports: live client sessions and vendor connections."""

    sessions: int = 0
    vendor_connections: int = 0
    vendor_connects_total: int = 0
    vendor_drops_total: int = 0


def vendor_listen_url(raw: str) -> str:
    """``DEEPGRAM_URL`` as a WebSocket URL of the listen endpoint: http(s) becomes ws(s), and a
    bare host gets Deepgram's path ``/v1/listen``."""
    parts = urlsplit(raw)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"the Deepgram URL must be ws://, wss://, http:// or https:// with a host; got {raw!r}")
    path = parts.path.rstrip("/") or "/v1/listen"
    return f"{scheme}://{parts.netloc}{path}"


class Session:
    """One client connection and the vendor connection(s) serving it."""

    def __init__(self, relay: Relay, client: ServerConnection, query: list[tuple[str, str]]):
        self.relay = relay
        self.cfg = relay.cfg
        self.client = client
        self.id = "relay-" + secrets.token_hex(6)
        self.query = [(k, v) for k, v in query if k not in CLIENT_PARAMS_KEPT_BACK] + [("tag", self.id)]
        self.vendor: ClientConnection | None = None
        self.vendors: set[ClientConnection] = set()  # every open one (more than one only with a defect)
        self.flushing = False  # held audio is being sent: new audio queues behind it, in order
        self.opening: asyncio.Task[None] | None = None
        self.held: deque[bytes] = deque()  # audio waiting for the vendor connection
        self.held_bytes = 0
        self.last_vendor_send = time.monotonic()
        self.last_audio_send = 0.0  # when audio last went to the vendor (keepalives do not count)
        self.last_result = time.monotonic()  # when the vendor last sent a result (or the connection opened)
        self.closing = False  # CloseStream sent to the vendor: its close is expected
        self.vendor_failed: str | None = None  # no vendor any more (defect, or every reconnect failed)
        self.done = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.accumulated: list[tuple[dict[str, Any], bytes]] = []  # relay-unbounded-accumulator only
        self.audio_since_result = bytearray()
        self.burst = bytearray()  # relay-burst-gaps only

    # --- the client side -----------------------------------------------------------------
    async def run(self) -> None:
        self._spawn(self._keepalive_loop())
        self._spawn(self._stall_watch())
        if self.cfg.has("relay-burst-gaps"):
            self._spawn(self._burst_loop())
        try:
            async for message in self.client:
                if isinstance(message, bytes):
                    if not message:  # Deepgram's older CloseStream: an empty binary frame
                        await self._close_stream()
                        break
                    await self._on_audio(message)
                elif await self._on_text(message):
                    break
            else:
                log.info("session %s: client left", self.id)
        except ConnectionClosed:
            log.info("session %s: client connection dropped", self.id)
        finally:
            await self._shutdown()

    async def _on_text(self, text: str) -> bool:
        """True when the stream is over (CloseStream)."""
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "CloseStream":
            await self._close_stream()
            return True
        if kind == "Finalize":
            await self._to_vendor(text)
        elif kind == "KeepAlive":
            pass  # the relay keeps the vendor connection alive itself
        else:
            await self._to_client_error(f"unknown message {text[:80]!r}: expected KeepAlive, Finalize or CloseStream")
        return False

    async def _on_audio(self, pcm: bytes) -> None:
        if self.vendor_failed:
            return  # relay-no-vendor-reconnect: the rest of the session is lost
        if self.cfg.has("relay-unbounded-accumulator"):
            self.audio_since_result += pcm
        if self.cfg.has("relay-burst-gaps"):
            self.burst += pcm  # waits for the timer
            return
        await self._send_audio(pcm)

    async def _send_audio(self, pcm: bytes) -> None:
        if self.vendor is None or self.held or self.flushing:
            self._hold(pcm)  # behind what is already waiting, so the vendor gets every byte in order
            if self.vendor is None:
                self._ensure_vendor()
            return
        try:
            await self.vendor.send(pcm)
            self.last_vendor_send = self.last_audio_send = time.monotonic()
        except ConnectionClosed:
            self._hold(pcm)  # the vendor reader sees the close and reconnects; this audio goes first

    def _hold(self, pcm: bytes) -> None:
        self.held.append(pcm)
        self.held_bytes += len(pcm)
        while self.held_bytes > MAX_HELD_BYTES:  # bounded: the oldest audio goes first, and is logged
            dropped = self.held.popleft()
            self.held_bytes -= len(dropped)
            log.warning("session %s: dropped %d bytes of held audio (vendor down too long)", self.id, len(dropped))

    async def _close_stream(self) -> None:
        """The client's CloseStream: flush, CloseStream to the vendor, its last results, Metadata, 1000."""
        if self.cfg.has("relay-burst-gaps") and self.burst:
            await self._send_audio(bytes(self.burst))
            self.burst.clear()
        if self.opening is not None:
            with contextlib.suppress(Exception):
                await self.opening
        self.closing = True
        if self.vendor is not None and not self.vendor_failed:
            await self._flush_held()
            await self._to_vendor(json.dumps({"type": "CloseStream"}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), timeout=30)  # the vendor reader sets it at the close
        await self._to_client({"type": "Metadata", "request_id": self.id, "transaction_key": "deprecated",
                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "channels": 1})
        with contextlib.suppress(ConnectionClosed):
            await self.client.close(1000, "")

    # --- the vendor side -----------------------------------------------------------------
    def _ensure_vendor(self) -> None:
        if self.cfg.has("relay-duplicate-vendor-connection"):
            # The bug: "no vendor connection yet?" is asked again for every chunk while the first
            # connection is still in its handshake, so each such chunk starts another one.
            self.opening = self._spawn(self._open_vendor(attempt=0))
            return
        if self.opening is None or self.opening.done():
            self.opening = self._spawn(self._open_vendor(attempt=0))

    async def _open_vendor(self, attempt: int) -> None:
        url = f"{self.cfg.vendor_url}?{urlencode(self.query)}"
        while True:
            try:
                ws = await connect(url, additional_headers={"Authorization": f"Token {self.cfg.vendor_key}"},
                                   open_timeout=10, ping_interval=None, max_size=None, compression=None,
                                   proxy=None)
                break
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
                attempt += 1
                if attempt > self.cfg.max_reconnects:
                    await self._vendor_gone(f"vendor unreachable after {attempt} attempts: "
                                            f"{'HTTP ' + str(status) if status else repr(exc)}")
                    return
                delay = min(self.cfg.backoff_cap_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
                log.warning("session %s: vendor connect failed (%s); retry %d in %.1f s", self.id,
                            status or exc, attempt, delay)
                await asyncio.sleep(delay)
        self.vendor = ws
        self.last_result = time.monotonic()
        self.vendors.add(ws)
        self.relay.counters.vendor_connections += 1
        self.relay.counters.vendor_connects_total += 1
        log.info("session %s: vendor connection open (attempt %d)", self.id, attempt)
        self._spawn(self._vendor_reader(ws))
        await self._flush_held()

    async def _flush_held(self) -> None:
        if self.flushing:
            return
        self.flushing = True
        try:
            while self.held and self.vendor is not None:
                pcm = self.held[0]
                try:
                    await self.vendor.send(pcm)
                except ConnectionClosed:
                    return  # kept: the reconnect sends it
                self.held.popleft()
                self.held_bytes -= len(pcm)
                self.last_vendor_send = self.last_audio_send = time.monotonic()
        finally:
            self.flushing = False

    async def _vendor_reader(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, str):
                    await self._from_vendor(message)
        except ConnectionClosed:
            pass
        finally:
            self.relay.counters.vendor_connections -= 1
            self.vendors.discard(ws)
            if self.vendor is ws:
                self.vendor = None
            if self.closing or self.client.close_code is not None:
                self.done.set()
            else:
                await self._vendor_dropped(ws.close_code, ws.close_reason)

    async def _vendor_dropped(self, code: int | None, reason: str | None) -> None:
        self.relay.counters.vendor_drops_total += 1
        log.warning("session %s: vendor closed %s %s", self.id, code, reason or "")
        if self.cfg.has("relay-no-vendor-reconnect"):
            self.vendor_failed = f"vendor closed {code} {reason or ''}".strip()
            return
        if self.vendor is None and (self.opening is None or self.opening.done()):
            self.opening = self._spawn(self._open_vendor(attempt=1))

    async def _vendor_gone(self, why: str) -> None:
        """Every reconnect failed: the client hears of it (close 1011) instead of waiting forever."""
        self.vendor_failed = why
        log.error("session %s: %s", self.id, why)
        with contextlib.suppress(ConnectionClosed):
            await self.client.close(1011, f"NET-0000 {why}"[:120])

    async def _from_vendor(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if message.get("type") == "Metadata":
            return  # the relay sends its own, with its session id, when the client's stream ends
        if message.get("type") == "Results":
            self.last_result = time.monotonic()
        if isinstance(message.get("metadata"), dict):
            message["metadata"]["request_id"] = self.id  # the client knows the relay's session, not the vendor's
        if self.cfg.has("relay-unbounded-accumulator"):
            self.accumulated.append((message, bytes(self.audio_since_result)))
            self.audio_since_result = bytearray()
        if self.cfg.has("relay-cross-talk"):
            for session in list(self.relay.sessions.values()):  # the bug: the service's channel, not the session's
                await session._to_client(message)
            return
        await self._to_client(message)

    async def _to_vendor(self, text: str) -> None:
        if self.vendor is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.vendor.send(text)
                self.last_vendor_send = time.monotonic()

    async def _to_client(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            with contextlib.suppress(ConnectionClosed):
                await self.client.send(json.dumps(message))

    async def _to_client_error(self, text: str) -> None:
        await self._to_client({"type": "Error", "err_code": "bad_message", "description": text})

    # --- timers --------------------------------------------------------------------------
    async def _keepalive_loop(self) -> None:
        """KeepAlive when nothing went to the vendor for keepalive_s (Deepgram's NET-0001 guard)."""
        if self.cfg.has("relay-no-keepalive"):
            return
        while True:
            await asyncio.sleep(min(0.5, self.cfg.keepalive_s / 2))
            if self.vendor is not None and not self.closing and \
                    time.monotonic() - self.last_vendor_send >= self.cfg.keepalive_s:
                await self._to_vendor(json.dumps({"type": "KeepAlive"}))

    async def _stall_watch(self) -> None:
        """Audio is going in and nothing has come back for result_timeout_s: the vendor stalled
        (the socket is open, the results stopped). Close it; the reader reconnects."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            ws = self.vendor
            if ws is None or self.closing or now - self.last_audio_send > 1.0:
                continue  # no vendor, or the client is silent: no result is owed
            if now - self.last_result > self.cfg.result_timeout_s:
                log.warning("session %s: vendor stalled: no result for %.1f s while streaming", self.id,
                            now - self.last_result)
                self.last_result = now
                with contextlib.suppress(Exception):
                    await ws.close(4000, f"stalled: no result for {self.cfg.result_timeout_s:g} s")

    async def _burst_loop(self) -> None:
        """relay-burst-gaps: after each send and clear, new audio waits for the next tick."""
        while True:
            await asyncio.sleep(BURST_TIMER_S)
            if self.burst and not self.vendor_failed:
                pcm, self.burst = bytes(self.burst), bytearray()
                await self._send_audio(pcm)

    # --- life cycle ----------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _shutdown(self) -> None:
        self.closing = True
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        for ws in list(self.vendors):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "client gone"), timeout=2)
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task


class Relay:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.counters = Counters()
        self.sessions: dict[str, Session] = {}
        self.tokens: dict[str, Grant] = {}  # session tokens issued by /v1/auth/grant

    def health(self) -> dict[str, Any]:
        vendor: int | str = "N/A" if self.cfg.has("relay-health-na") else self.counters.vendor_connections
        return {"status": "ok", "sessions": self.counters.sessions, "vendor_connections": vendor,
                "vendor_connects_total": self.counters.vendor_connects_total,
                "vendor_drops_total": self.counters.vendor_drops_total, "defects": sorted(self.cfg.defects)}

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/health":
            return _json_response(200, self.health())
        if path == "/v1/auth/grant":
            if not self._is_service_key(request):
                return _json_response(401, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."})
            return _json_response(200, self.grant())
        if path != "/v1/listen":
            return _json_response(404, {"err_code": "NOT_FOUND", "err_msg": f"no such path {path!r}; "
                                        "the relay serves /v1/listen, /v1/auth/grant and /health"})
        if self.cfg.has("relay-no-auth"):
            return None  # the bug: whoever asks gets a session
        if self._is_service_key(request) or self._spend_token(request):
            return None  # go on with the WebSocket handshake
        return _json_response(401, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."})

    def _is_service_key(self, request: Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "token" and secrets.compare_digest(key.strip(), self.cfg.api_key)

    def grant(self) -> dict[str, Any]:
        now = time.monotonic()
        for token in [t for t, g in self.tokens.items() if g.expires < now]:  # bounded: expired ones go
            del self.tokens[token]
        token = secrets.token_urlsafe(24)
        self.tokens[token] = Grant(expires=now + TOKEN_TTL_S)
        return {"access_token": token, "expires_in": TOKEN_TTL_S}

    def _spend_token(self, request: Request) -> bool:
        """A valid session token is spent by the connection that presents it: one token, one session."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires < time.monotonic():
            return False
        if grant.spent and not self.cfg.has("relay-token-reuse"):
            log.warning("refused a connection presenting a session token that another session already used")
            return False
        grant.spent = True
        return True

    async def handler(self, client: ServerConnection) -> None:
        query = parse_qsl(urlsplit(client.request.path).query, keep_blank_values=True)
        session = Session(self, client, query)
        self.sessions[session.id] = session
        self.counters.sessions += 1
        log.info("session %s: client connected", session.id)
        try:
            await session.run()
        finally:
            self.counters.sessions -= 1
            del self.sessions[session.id]


def _json_response(status: int, body: dict[str, Any]) -> Response:
    data = json.dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return Response(status, http.HTTPStatus(status).phrase, headers, data)


async def serve_forever(cfg: Config) -> None:
    relay = Relay(cfg)
    async with serve(relay.handler, cfg.host, cfg.port, process_request=relay.process_request,
                     max_size=None, compression=None, ping_interval=20) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"relay listening on http://{cfg.host}:{port} vendor={cfg.vendor_url} "
              f"defects={','.join(sorted(cfg.defects)) or 'none'}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in ("SIGTERM", "SIGINT"):
            with contextlib.suppress(NotImplementedError, AttributeError):
                import signal

                asyncio.get_running_loop().add_signal_handler(getattr(signal, sig), stop.set_result, None)
        await stop


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="relay", description="An example relay from Deepgram clients to Deepgram.")
    p.add_argument("--port", type=int, default=int(os.environ.get("RELAY_PORT", "8780")))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--deepgram-url", default=os.environ.get("DEEPGRAM_URL", "wss://api.deepgram.com/v1/listen"),
                   help="the vendor's listen URL (default: $DEEPGRAM_URL, else Deepgram's)")
    p.add_argument("--deepgram-api-key", default=os.environ.get("DEEPGRAM_API_KEY"),
                   help="the vendor key (default: $DEEPGRAM_API_KEY)")
    p.add_argument("--api-key", default=os.environ.get("RELAY_API_KEY"),
                   help="the key clients must present (default: $RELAY_API_KEY)")
    p.add_argument("--keepalive-s", type=float, default=3.0,
                   help="send KeepAlive after this long with nothing sent to the vendor")
    p.add_argument("--result-timeout-s", type=float, default=3.0,
                   help="a vendor that sends no result for this long while audio goes in has stalled: reconnect")
    p.add_argument("--max-reconnects", type=int, default=5)
    p.add_argument("--defect", action="append", default=[], metavar="NAME",
                   help=f"switch on a planted defect (repeatable): {', '.join(DEFECTS)}")
    args = p.parse_args(argv)
    unknown = [d for d in args.defect if d not in DEFECTS]
    if unknown:
        p.error(f"unknown defect {', '.join(map(repr, unknown))}; known defects: {', '.join(DEFECTS)}")
    if not args.deepgram_api_key:
        p.error("no vendor key: give --deepgram-api-key or set DEEPGRAM_API_KEY")
    if not args.api_key:
        p.error("no client key: give --api-key or set RELAY_API_KEY (clients send Authorization: Token <key>)")
    if not args.keepalive_s > 0:
        p.error(f"--keepalive-s must be > 0, got {args.keepalive_s}")
    if not args.result_timeout_s > 0:
        p.error(f"--result-timeout-s must be > 0, got {args.result_timeout_s}")
    try:
        url = vendor_listen_url(args.deepgram_url)
    except ValueError as exc:
        p.error(str(exc))
    return Config(port=args.port, host=args.host, vendor_url=url, vendor_key=args.deepgram_api_key,
                  api_key=args.api_key, defects=frozenset(args.defect), keepalive_s=args.keepalive_s,
                  result_timeout_s=args.result_timeout_s,
                  max_reconnects=args.max_reconnects)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(serve_forever(cfg))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
