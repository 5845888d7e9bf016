"""The vendor leg as the fault proxy sees it: a :class:`WsFaultProxy` that also keeps the record.

The relay suite puts the fault proxy between the system under test and the vendor stand-in; every
connection the service makes to the vendor passes through it, so the proxy can record what a
relay check needs (open and close times, close code, who closed, every audio frame's arrival time
and size, control messages, results) as a :class:`~harness.vendorleg.VendorLeg`, in the same
shape the reference server's ``GET /debug/connections`` serves. When the server's own record is
there, the suite merges this one into it (``VendorLeg.merge``): the proxy adds what the server
cannot see (refused handshakes, faults it fired, cuts).

Times are ``time.monotonic_ns()`` at the proxy, the moment a message arrives from the service
(before any fault rule acts on it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from harness.faults.wsproxy import UPSTREAM, Message, Pipe, WsFaultProxy
from harness.vendorleg import AudioLog, VendorConnection, VendorLeg

PROTOCOL_BY_PATH = (("/v1/listen", "deepgram"), ("/v1/realtime", "openai-realtime"), ("/v3/ws", "assemblyai"),
                    ("/v2", "speechmatics"))
RESULT_KINDS = {"Results", "Turn", "AddTranscript", "AddPartialTranscript",
                "conversation.item.input_audio_transcription.completed",
                "conversation.item.input_audio_transcription.delta"}
MAX_FRAMES = 200_000  # exact frame times kept per connection; totals and the largest gap cover all


def protocol_of(path: str) -> str:
    p = urlsplit(path).path
    return next((name for prefix, name in PROTOCOL_BY_PATH if p.startswith(prefix)), "unknown")


def with_query(path: str, extra: dict[str, str]) -> str:
    """``path`` with ``extra`` appended to its query (parameters it already has are kept)."""
    have = parse_qs(urlsplit(path).query)
    add = {k: v for k, v in extra.items() if k not in have}
    if not add:
        return path
    return path + ("&" if "?" in path else "?") + urlencode(add)


def tag_of(path: str) -> str | None:
    values = parse_qs(urlsplit(path).query).get("tag")
    return values[0] if values else None


class RecordingProxy(WsFaultProxy):
    """A fault proxy that records every connection through it (see the module docstring)."""

    def __init__(self, *args: Any, extra_query: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Query parameters added to every handshake on its way to the vendor: the stand-in's own
        # extensions (the scripted engine's ``script``) that a client library has no way to send.
        self.extra_query = dict(extra_query or {})
        self._ids = itertools.count(1)
        self.record: list[VendorConnection] = []
        self._by_client: dict[int, VendorConnection] = {}
        # handshakes still to refuse: (status, Retry-After seconds or None), first one next. A
        # vendor's 429/503 at connect; until the fault proxy has its own handshake rules, here.
        self.refusals: list[tuple[int, float | None]] = []

    def refuse_next(self, count: int, status: int = 429, retry_after_s: float | None = 1.0) -> None:
        if count < 1 or not 400 <= status < 600:
            raise ValueError(f"refuse_next needs count >= 1 and an HTTP error status, got {count}, {status}")
        self.refusals.extend([(status, retry_after_s)] * count)

    def vendor_leg(self) -> VendorLeg:
        """A snapshot (copies), safe to hand to a check while the proxy runs on."""
        return VendorLeg.from_dict(VendorLeg(list(self.record)).to_dict())

    def _new(self, path: str, status: int) -> VendorConnection:
        conn = VendorConnection(conn_id=f"p-{next(self._ids)}", protocol=protocol_of(path), path=urlsplit(path).path,
                                tag=tag_of(path), handshake_status=status, opened_ns=time.monotonic_ns())
        self.record.append(conn)
        return conn

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.extra_query:
            request.path = with_query(request.path, self.extra_query)
        if self.refusals:
            status, retry_after = self.refusals.pop(0)
            response = connection.respond(status, json.dumps({"err_code": "TOO_MANY_REQUESTS" if status == 429
                                                              else "SERVICE_UNAVAILABLE",
                                                              "err_msg": "refused by the fault proxy"}) + "\n")
            if retry_after is not None:
                response.headers["Retry-After"] = f"{retry_after:g}"
            conn = self._new(request.path, status)
            conn.closed_ns = time.monotonic_ns()
            return response
        response = await super()._process_request(connection, request)
        if response is not None:  # refused (by the vendor, or unreachable): a record of its own
            conn = self._new(request.path, response.status_code)
            conn.closed_ns = time.monotonic_ns()
        return response

    async def _handler(self, connection: ServerConnection) -> None:
        conn = self._new(connection.request.path if connection.request else "", 101)
        self._by_client[id(connection)] = conn
        # The connection ends when either side's socket is closed, as the service sees it (it may
        # reconnect at once), not when the proxy has finished relaying the close to the other side.
        pending = self._pending.get(id(connection))  # (upstream, the proxy's own record, steps)
        upstream = pending[0] if isinstance(pending, tuple) else pending
        watchers = [asyncio.ensure_future(c.wait_closed()) for c in (connection, upstream) if c is not None]
        first_close = asyncio.ensure_future(asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED))
        first_close.add_done_callback(lambda _: _closed_now(conn))
        try:
            await super()._handler(connection)
        finally:
            for w in watchers:
                w.cancel()
            _closed_now(conn)
            link = next((lk for lk in self.links if lk.client is connection), None)
            if link is not None:
                up = link.upstream
                conn.close_code, conn.close_reason = up.close_code, up.close_reason or ""
                if link.forced is not None:
                    conn.closed_by = "proxy"
                    conn.close_code, conn.close_reason = link.forced
                elif up.protocol.close_rcvd_then_sent is True:
                    conn.closed_by = "server"
                elif up.protocol.close_rcvd_then_sent is False:
                    conn.closed_by = "client"
                if conn.close_code is None and link.client.close_code is None:
                    conn.close_code = 1006  # no close frame either way: a cut
            self._by_client.pop(id(connection), None)

    def route(self, msg: Message, pipe: Pipe) -> None:
        conn = self._by_client.get(id(pipe.link.client))
        if conn is not None:
            _note(conn, msg)
        super().route(msg, pipe)


def _closed_now(conn: VendorConnection) -> None:
    if conn.closed_ns is None:
        conn.closed_ns = time.monotonic_ns()


def _note(conn: VendorConnection, msg: Message) -> None:
    now = time.monotonic_ns()
    if msg.direction == UPSTREAM:
        if msg.kind == "binary":
            audio: AudioLog = conn.audio
            size = len(msg.data)
            if audio.last_ns is not None:
                audio.max_gap_ns = max(audio.max_gap_ns, now - audio.last_ns)
            if audio.first_ns is None:
                audio.first_ns = now
            audio.last_ns = now
            audio.total_frames += 1
            audio.total_bytes += size
            if len(audio.frames) < MAX_FRAMES:
                audio.frames.append((now, size))
        elif msg.kind != "text":
            conn.controls.append((now, msg.kind))
        return
    if msg.kind in RESULT_KINDS and msg.obj is not None:
        conn.results.append((now, _is_final(msg.obj), _text(msg.obj)))


def _is_final(obj: dict[str, Any]) -> bool:
    return bool(obj.get("is_final") or obj.get("end_of_turn") or obj.get("type", "").endswith(("completed",))
                or obj.get("type") == "AddTranscript")


def _text(obj: dict[str, Any]) -> str:
    try:
        return str(obj["channel"]["alternatives"][0]["transcript"])
    except (KeyError, IndexError, TypeError):
        return str(obj.get("transcript") or obj.get("text") or "")


def leg_to_json(leg: VendorLeg) -> str:
    return json.dumps(leg.to_dict(), indent=1)
