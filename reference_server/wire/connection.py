"""The I/O half of every vendor endpoint: one WebSocket, one adapter, one session, one record.

The driver authorizes, accepts, feeds each frame to the adapter and carries out the actions it
returns (``adapter.py``), in order, on the receive loop. Results from the session layer arrive on
other tasks through ``send`` (this is the session's stream sink) and are turned into frames by the
same adapter; every send goes through one lock, so frames leave in the order they were made.

A connection that ends without the protocol's own end (client gone, idle close, engine failure)
is finalized all the same: a vendor client cannot come back to a session, so leaving it open
would only hold a place against ``max_sessions``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse
from starlette.websockets import WebSocket

from ..engines import BYTES_PER_MS
from ..session_runtime import SessionRuntime
from ..sessions import SessionError
from ..session_states import FINALIZED
from .adapter import Action, Adapter, Audio, Close, Control, Deny, Finish, Flush, Open, Received, Send, SendRaw
from .records import ConnectionRecord

if TYPE_CHECKING:
    from ..server_parts import ServerState

log = logging.getLogger("reference_server.wire")


class VendorConnection:
    def __init__(self, ws: WebSocket, state: ServerState, adapter: Adapter, record: ConnectionRecord) -> None:
        self.ws = ws
        self.state = state
        self.manager = state.manager
        self.adapter = adapter
        self.record = record
        self.rt: SessionRuntime | None = None
        self.closed = False
        self.finished = False  # the protocol's own end ran the finalize path
        self.last_activity = time.monotonic()
        self.opened = self.last_activity
        self.handling = False  # while a frame is handled (backpressure, a flush) silence is not measured
        self._send_lock = asyncio.Lock()

    # --- StreamSink (the session layer calls these) ----------------------------------------
    async def send(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind in ("partial", "final"):
            self.record.result(is_final=kind == "final", text=message.get("text", ""))
            await self.run(self.adapter.on_result(message, is_final=kind == "final"))
        elif kind == "error":
            await self.run(self.adapter.on_engine_error(str(message.get("message", ""))))
        return not self.closed  # acks and pipeline events have no vendor counterpart

    async def close(self, code: int, reason: str = "") -> None:
        if not self.closed:
            await self.run(self.adapter.on_server_close(code, reason))

    async def ack(self) -> None:
        return None

    # --- actions -------------------------------------------------------------------------
    async def run(self, actions: list[Action]) -> None:
        for action in actions:
            if self.closed:
                return
            await self._do(action)

    async def _do(self, action: Action) -> None:
        if isinstance(action, Send):
            await self._send_text(json.dumps(action.message, separators=(",", ":")))
        elif isinstance(action, SendRaw):
            await self._send_text(action.frame)
        elif isinstance(action, Control):
            self.record.control(action.kind, **action.detail)
        elif isinstance(action, Received):
            self.record.audio(action.n_bytes)
            self.state.stats.protocol_audio(self.adapter.protocol, action.n_bytes)
        elif isinstance(action, Open):
            await self._open()
        elif isinstance(action, Audio):
            await self._audio(action.pcm)
        elif isinstance(action, Flush):
            await self._flush()
        elif isinstance(action, Finish):
            await self._finish()
        elif isinstance(action, Close):
            await self._close(action.code, action.reason)
        elif isinstance(action, Deny):  # an adapter bug: a denial after accept
            log.error("%s: Deny after the handshake ignored", self.adapter.protocol)

    async def _send_text(self, frame: str | bytes) -> None:
        async with self._send_lock:
            if self.closed:
                return
            try:
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_text(frame)
            except Exception:  # noqa: BLE001 - the peer is gone; the receive loop sees it
                self.closed = True

    async def _close(self, code: int, reason: str) -> None:
        async with self._send_lock:  # after anything already being sent
            if self.closed:
                return
            self.closed = True
            self.record.closed(code, reason, by="server")
            try:
                await self.ws.close(code, reason[:120])
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def _create(self) -> list[Action] | None:
        """Create the session; the adapter's refusal actions if it cannot be."""
        try:
            rt, _token = await self.manager.create(self.adapter.session_body())
        except SessionError as exc:
            return self.adapter.on_refused(exc.status, exc.code, exc.message)
        self.rt = rt
        self.record.session_id = rt.id
        return None

    async def _attach(self) -> bool:
        rt = self.rt
        assert rt is not None

        async def no_ready(_committed: int) -> None:
            return None  # vendors say hello in their own way (on_session)

        if not await self.manager.attach(rt, self, -1, no_ready):
            await self.run(self.adapter.on_server_close(4410, "session already finalized"))
            return False
        await self.run(self.adapter.on_session(rt.id, rt.created_at))
        return True

    async def _open(self) -> bool:
        if self.rt is not None:
            return True
        refusal = await self._create()
        if refusal is not None:
            await self.run(refusal)
            return False
        return await self._attach()

    async def _audio(self, pcm: bytes) -> None:
        if not pcm:
            return
        if self.rt is None and not await self._open():
            return
        rt = self.rt
        assert rt is not None
        if rt.state in FINALIZED or rt.deleted or self.finished:
            await self.run(self.adapter.on_finalized_audio())
            return
        step = self.manager.config.max_frame_bytes
        for i in range(0, len(pcm), step):
            self.manager.take_audio(rt, rt.received_offset, pcm[i:i + step])
        await self.manager.backpressure(rt)  # stop reading while the engine is far behind

    async def _flush(self) -> None:
        if self.rt is not None and self.rt.state not in FINALIZED:
            await self.manager.flush_mid_stream(self.rt, before_flush=self.adapter.flush_started)
        await self.run(self.adapter.on_flushed())

    async def _finish(self) -> None:
        rt = self.rt
        if rt is not None and not self.finished:
            self.finished = True
            if rt.state not in FINALIZED:
                # flushed first so the last finals are told apart from the engine's own endpoints
                await self.manager.flush_mid_stream(rt, before_flush=self.adapter.flush_started)
            await self.manager.finalize(rt, self.adapter.protocol)
            self.manager.detach(rt, self)  # the pipeline goes on without this connection
        self.finished = True
        await self.run(self.adapter.on_finished())

    # --- receiving -----------------------------------------------------------------------
    async def receive_loop(self) -> None:
        loop = asyncio.get_running_loop()
        helpers = []
        if self.adapter.idle_timeout_s and "idle-never" not in self.manager.defects:  # planted: never closed
            helpers.append(loop.create_task(self._idle_watchdog(self.adapter.idle_timeout_s)))
        if self.adapter.tick_s:
            helpers.append(loop.create_task(self._ticks(self.adapter.tick_s)))
        code, reason = None, None
        try:
            while not self.closed:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    code, reason = message.get("code"), message.get("reason")
                    break
                self.handling = True
                try:
                    if message.get("bytes") is not None:
                        if message["bytes"] and self.adapter.binary_is_audio:
                            self.record.audio(len(message["bytes"]))
                            self.state.stats.protocol_audio(self.adapter.protocol, len(message["bytes"]))
                        await self.run(self.adapter.on_bytes(message["bytes"]))
                    elif message.get("text") is not None:
                        await self.run(self.adapter.on_text(message["text"]))
                finally:
                    self.handling = False
                    # planted keepalive-ignored: only audio counts as activity, control messages do not
                    if message.get("bytes") is not None or "keepalive-ignored" not in self.manager.defects:
                        self.last_activity = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the connection broke mid-receive
            # a bug here must not leave the client without a close frame, nor the session open
            log.exception("%s %s: connection failed", self.adapter.protocol, self.record.id, exc_info=exc)
            code, reason = 1011, f"internal error ({type(exc).__name__})"
            await self._close(code, reason)
        finally:
            for task in helpers:
                task.cancel()
            self.record.closed(code if code is not None else 1006, reason or "client went away", by="client")
            self.closed = True
            rt = self.rt
            if rt is not None and not self.finished:
                self.finished = True
                self.manager.detach(rt, self)
                await self.manager.finalize(rt, f"{self.adapter.protocol}-disconnect")

    async def _idle_watchdog(self, timeout: float) -> None:
        while not self.closed:
            remaining = self.last_activity + timeout - time.monotonic()
            if remaining <= 0 and self.handling:
                remaining = timeout
            elif remaining <= 0:
                await self.run(self.adapter.on_idle())
                return
            await asyncio.sleep(remaining)

    async def _ticks(self, period: float) -> None:
        while not self.closed:
            await asyncio.sleep(period)
            rt = self.rt
            if rt is None or rt.pending or rt.feed_lock.locked():
                continue
            await self.run(self.adapter.on_tick(rt.received_offset // BYTES_PER_MS))


async def serve_vendor(ws: WebSocket, state: ServerState, make: Callable[..., Adapter], *,
                       authenticate: bool = True) -> None:
    """One vendor endpoint: authorize and check the query at the handshake, accept, run.

    ``authenticate=False`` is for a listener whose protocol carries no credential at all (Wyoming
    over TCP): the operator opened it with a flag, on an address of their choosing."""
    adapter = make(ws.query_params, ws.headers, state.config)
    record = state.connections.open(adapter.protocol, adapter.tag, ws.url.path)
    state.stats.protocol_connection(adapter.protocol)
    conn = VendorConnection(ws, state, adapter, record)
    if authenticate and not state.manager.authorized(None, adapter.credential()):
        actions = adapter.unauthorized()
        record.control("unauthorized")
    else:
        actions = adapter.on_connect()
        record.tag = adapter.tag
        if adapter.create_before_accept and not actions:
            actions = await conn._create() or []
    if actions and isinstance(actions[0], Deny):
        deny = actions[0]
        record.refused(deny.status)
        await ws.send_denial_response(JSONResponse(deny.body, status_code=deny.status, headers=deny.headers))
        return
    try:
        await ws.accept(subprotocol=adapter.subprotocol)
    except Exception:  # noqa: BLE001 - the client left during the handshake: nobody knows this session
        record.closed(1006, "client left during the handshake", by="client")
        if conn.rt is not None:
            await state.manager.delete(conn.rt)
        return
    state.stats.ws_opened()
    try:
        if conn.rt is not None and not actions and not await conn._attach():
            return
        if adapter.open_at_connect and not any(isinstance(a, Close) for a in actions):
            actions = [Open(), *actions]
        await conn.run(actions)
        if not conn.closed:
            await conn.receive_loop()
        elif conn.rt is not None and not conn.finished:
            conn.finished = True
            conn.manager.detach(conn.rt, conn)
            await conn.manager.finalize(conn.rt, f"{adapter.protocol}-closed")
    finally:
        state.stats.ws_closed()
