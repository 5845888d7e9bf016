"""The v1 stream (``GET /v1/stream``, WebSocket): one connection attached to one session.

The connection is accepted first and refused afterwards with a close code (1008, 4404, 4410, 1013):
a client author can act on a close code, while a refused handshake only says "403". Audio frames
are taken in order on the receive loop (the offset rules need no engine), acked, and handed to the
session's engine feeder; partials and finals come back through ``send``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.websockets import WebSocket

from .framing import FrameError, parse_frame
from .session_runtime import SessionRuntime
from .sessions import SessionManager
from .session_states import FINALIZED
from .stats import Stats

log = logging.getLogger("reference_server.stream")


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def whole(x: float) -> int | float:
    """5.0 -> 5 on the wire; fractions (small values in tests) stay as they are."""
    return int(x) if float(x).is_integer() else x


class StreamConnection:
    def __init__(self, ws: WebSocket, rt: SessionRuntime, manager: SessionManager) -> None:
        self.ws = ws
        self.rt = rt
        self.manager = manager
        self.config = manager.config
        self.defects = manager.defects
        self._send_lock = asyncio.Lock()
        self.closed = False
        self.opened = time.monotonic()
        self.last_activity = self.opened
        self.finalize_sent = False
        self._last_ack = 0.0
        self._ack_timer: asyncio.TimerHandle | None = None

    # --- sending -------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> bool:
        if self.closed:
            return False
        text = json.dumps(message, separators=(",", ":"))
        async with self._send_lock:
            if self.closed:
                return False
            try:
                await self.ws.send_text(text)
                return True
            except Exception:  # noqa: BLE001 - the peer is gone; the receive loop sees the disconnect
                self.closed = True
                return False

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        async with self._send_lock:  # after anything already being sent
            if self.closed:
                return
            self.closed = True
            self._cancel_ack_timer()
            try:
                await self.ws.close(code, reason)
            except Exception:  # noqa: BLE001 - already disconnected
                pass

    async def error(self, code: str, message: str, *, retryable: bool = False, **extra: Any) -> None:
        await self.send({"type": "error", "code": code, "message": message, "retryable": retryable, **extra})

    async def ack(self) -> None:
        """Ack now, or at most ack_min_interval_s after the last ack (a timer makes sure the
        last frame of a burst is acked too)."""
        if self.closed or self._ack_timer is not None:
            return
        now = time.monotonic()
        wait = self._last_ack + self.config.ack_min_interval_s - now
        if wait <= 0:
            await self._send_ack()
        else:
            self._ack_timer = asyncio.get_running_loop().call_later(wait, self._ack_timer_fired)

    def _ack_timer_fired(self) -> None:
        self._ack_timer = None
        asyncio.get_running_loop().create_task(self._send_ack())

    async def _send_ack(self) -> None:
        self._last_ack = time.monotonic()
        await self.send({"type": "ack", "received_offset": self.rt.received_offset,
                         "durable_offset": self.rt.durable_offset})

    def _cancel_ack_timer(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None

    # --- receiving -----------------------------------------------------------------------
    async def receive_loop(self) -> None:
        watchdog = None
        if self.config.heartbeat_enabled:  # defect no-heartbeat also drops the idle timeout
            watchdog = asyncio.get_running_loop().create_task(self._idle_watchdog())
        try:
            while not self.closed:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    await self._on_audio(message["bytes"])
                elif message.get("text") is not None:
                    await self._on_text(message["text"])
        except Exception as exc:  # noqa: BLE001 - the connection broke mid-receive
            log.debug("stream %s: receive ended: %r", self.rt.id, exc)
        finally:
            self.closed = True
            self._cancel_ack_timer()
            if watchdog is not None:
                watchdog.cancel()

    async def _idle_watchdog(self) -> None:
        idle = self.config.idle_timeout_s
        if "idle-never" in self.defects:  # planted: a silent stream is held for ever
            return
        while not self.closed:
            if self.finalize_sent or self.rt.state in FINALIZED:
                return  # the pipeline may take a while: the server ends this stream itself
            remaining = self.last_activity + idle - time.monotonic()
            if remaining <= 0:
                await self.close(4408, f"idle timeout: no audio or keepalive for {idle:g} s")
                return
            await asyncio.sleep(remaining)

    async def _on_audio(self, frame: bytes) -> None:
        try:
            offset, payload = parse_frame(frame, self.config.max_frame_bytes)
        except FrameError as exc:
            await self.error(exc.code, str(exc))
            if exc.code == "frame_too_large":
                await self.close(1009, "frame too large")
            return
        if self.finalize_sent or self.rt.state in FINALIZED or self.rt.deleted:
            await self.error("session_closed", "the session is finalized: it takes no more audio",
                             offset=offset)
            return
        self.last_activity = time.monotonic()
        kind = self.manager.take_audio(self.rt, offset, payload)
        if kind == "gap":
            await self.error(
                "audio_gap",
                f"frame at offset {offset} leaves a gap: the server has audio up to {self.rt.received_offset};"
                " resend from expected_offset",
                retryable=True, expected_offset=self.rt.received_offset, offset=offset,
            )
            return
        await self.ack()
        await self.manager.backpressure(self.rt)

    async def _on_text(self, text: str) -> None:
        if len(text) > self.config.max_frame_bytes + 8:
            await self.error("frame_too_large", f"text message of {len(text)} characters is too large")
            await self.close(1009, "frame too large")
            return
        try:
            message = json.loads(text)
        except ValueError as exc:
            await self.error("bad_message", f"malformed JSON: {exc}")
            return
        if not isinstance(message, dict):
            await self.error("bad_message", f"a control message must be a JSON object, got {type(message).__name__}")
            return
        kind = message.get("type")
        if kind == "keepalive":
            if "keepalive-ignored" not in self.defects:  # planted: only audio counts as activity
                self.last_activity = time.monotonic()
        elif kind == "finalize":
            await self._on_finalize()
        else:
            await self.error("bad_message", f"unknown message type {kind!r}; expected 'finalize' or 'keepalive'")

    async def _on_finalize(self) -> None:
        self.finalize_sent = True
        if "final-lost-on-close" in self.defects:
            # defect final-lost-on-close: the stream is closed as soon as finalize arrives, so
            # the flushed last final is stored but never sent.
            self.manager.detach(self.rt, self)
            await self.close(1000, "session complete")
            await self.manager.finalize(self.rt, "stream")
            return
        # The end of audio is acknowledged at once, whatever the ack rate limit: the client
        # learns that every byte was taken, then (after the flush) that every final is stored.
        self._cancel_ack_timer()
        await self._send_ack()
        await self.manager.finalize(self.rt, "stream")
        await self._send_ack()


async def serve_stream(ws: WebSocket, manager: SessionManager, stats: Stats) -> None:
    """The endpoint: authorize, attach (ready, replay), receive until closed, detach."""
    await ws.accept()
    stats.ws_opened()
    try:
        await _serve(ws, manager)
    finally:
        stats.ws_closed()


async def _serve(ws: WebSocket, manager: SessionManager) -> None:
    params = ws.query_params
    credential = bearer(ws.headers.get("authorization")) or params.get("access_token")
    session_id = params.get("session_id") or ""
    rt = manager.get(session_id) if session_id else None
    if not manager.authorized(rt, credential):
        await ws.close(1008, "not authorized")
        return
    if rt is None:
        await ws.close(4404, "unknown session" if session_id else "session_id is required")
        return
    if rt.state in FINALIZED:
        await ws.close(4410, "session already finalized")
        return
    if rt.stream is None and manager.live_streams() >= manager.config.max_sessions:
        conn_error = {"type": "error", "code": "overloaded", "retryable": True,
                      "message": f"at capacity: {manager.config.max_sessions} live streams",
                      "retry_after_s": manager.config.retry_after_s}
        await ws.send_text(json.dumps(conn_error))
        await ws.close(1013, "at capacity")
        return
    last_segment_id = -1
    bad_last: str | None = None
    raw_last = params.get("last_segment_id")
    if raw_last is not None:
        try:
            last_segment_id = int(raw_last)
            if last_segment_id < -1:
                raise ValueError
        except ValueError:
            bad_last = raw_last
            last_segment_id = -1
    conn = StreamConnection(ws, rt, manager)

    async def send_ready(committed: int) -> None:
        await conn.send({
            "type": "ready", "session_id": rt.id, "committed_offset": committed, "sample_rate": 16000,
            "heartbeat_s": whole(manager.config.heartbeat_s), "idle_timeout_s": whole(manager.config.idle_timeout_s),
            "max_frame_bytes": manager.config.max_frame_bytes,
        })
        if bad_last is not None:  # replaying everything is safe: clients dedupe by segment id
            await conn.error("bad_message", f"last_segment_id must be an integer >= -1, got {bad_last!r};"
                                            " replaying every final")

    if not await manager.attach(rt, conn, last_segment_id, send_ready):
        await conn.close(4410, "session already finalized")
        return
    try:
        await conn.receive_loop()
    finally:
        manager.detach(rt, conn)
        await conn.close(1000)
