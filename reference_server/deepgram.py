"""The Deepgram-compatible stream (``GET /v1/listen``): a subset of Deepgram's live API over the
same sessions, engines and finalize path as the v1 stream, so clients and SDKs written for
Deepgram run unchanged against the reference server.

Each connection is one session (``metadata.request_id`` is its session id, visible at
``GET /v1/sessions/{id}``). Raw PCM frames carry no offsets: every byte is appended. ``Finalize``
flushes the engine (finals come with ``from_finalize: true``) and the stream goes on;
``CloseStream`` runs the shared finalize path, answers ``Metadata`` and closes 1000. A connection
that drops without ``CloseStream`` is finalized as well: a Deepgram client cannot come back to a
session, so leaving it open would only hold a place against ``max_sessions`` forever.

Extensions beyond Deepgram's parameters: ``model`` may name one of this server's engines
(otherwise its default engine), and ``script`` gives the scripted engine its words.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

from fastapi.responses import JSONResponse
from starlette.websockets import WebSocket

from .engines import ENGINES
from .runtime import SessionRuntime
from .sessions import SessionError, SessionManager
from .stats import Stats
from .timefmt import iso

log = logging.getLogger("reference_server.deepgram")

MODEL_UUID = "00000000-0000-4000-8000-reference0001"


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() in ("true", "1", "yes")


def _credential(ws: WebSocket) -> str | None:
    header = ws.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    # browsers cannot set headers: Deepgram accepts the key as the subprotocol "token, <key>"
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) == 2 and protocols[0].lower() == "token":
        return protocols[1]
    return ws.query_params.get("token")


class DeepgramConnection:
    """Receives the session layer's v1 messages and speaks Deepgram's to the client."""

    def __init__(self, ws: WebSocket, rt: SessionRuntime, manager: SessionManager, params: dict[str, Any]) -> None:
        self.ws = ws
        self.rt = rt
        self.manager = manager
        self.interim = params["interim_results"]
        self.vad_events = params["vad_events"]
        self.utterance_end = params["utterance_end_ms"] is not None
        self.model = rt.engine_name
        self._send_lock = asyncio.Lock()
        self.closed = False
        self.from_finalize = False
        self.in_speech = False
        self.last_activity = time.monotonic()
        self.opened = self.last_activity
        self.odd_byte = b""
        self.sha = hashlib.sha256()
        self.bytes_in = 0

    # --- StreamSink --------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind == "partial":
            await self._speech_started(message["start_ms"])
            if self.interim:
                return await self._send(self._results(message, is_final=False))
            return True
        if kind == "final":
            await self._speech_started(message["start_ms"])
            self.in_speech = False
            await self._send(self._results(message, is_final=True))
            if self.utterance_end:
                await self._send({"type": "UtteranceEnd", "channel": [0, 1],
                                  "last_word_end": message["end_ms"] / 1000})
            return True
        if kind == "error":
            return await self._send({"type": "Error", "variant": message.get("code", "internal"),
                                     "description": message.get("message", ""), "message": message.get("message", "")})
        return True  # acks and pipeline events have no Deepgram counterpart

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        async with self._send_lock:
            if self.closed:
                return
            self.closed = True
            try:
                await self.ws.close(code, reason)
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def ack(self) -> None:
        return None

    # --- messages ----------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any]) -> bool:
        if self.closed:
            return False
        async with self._send_lock:
            if self.closed:
                return False
            try:
                await self.ws.send_text(json.dumps(message, separators=(",", ":")))
                return True
            except Exception:  # noqa: BLE001 - the receive loop sees the disconnect
                self.closed = True
                return False

    async def _speech_started(self, start_ms: int) -> None:
        if not self.in_speech:
            self.in_speech = True
            if self.vad_events:
                await self._send({"type": "SpeechStarted", "channel": [0, 1], "timestamp": start_ms / 1000})

    def _results(self, msg: dict[str, Any], *, is_final: bool) -> dict[str, Any]:
        words = [{"word": w["word"], "start": w["start_ms"] / 1000, "end": w["end_ms"] / 1000,
                  "confidence": w["confidence"], "punctuated_word": w["word"]} for w in msg.get("words", [])]
        confidence = sum(w["confidence"] for w in words) / len(words) if words else (1.0 if is_final else 0.0)
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": (msg["end_ms"] - msg["start_ms"]) / 1000,
            "start": msg["start_ms"] / 1000,
            "is_final": is_final,
            # every final closes a segment at an endpoint (a pause, max_segment_s or a flush)
            "speech_final": is_final,
            "from_finalize": is_final and self.from_finalize,
            "channel": {"alternatives": [{"transcript": msg["text"], "confidence": confidence, "words": words}]},
            "metadata": {"request_id": self.rt.id, "model_info": {"name": self.model, "version": "1", "arch": self.model},
                         "model_uuid": MODEL_UUID},
        }

    def metadata(self) -> dict[str, Any]:
        return {"type": "Metadata", "transaction_key": "deprecated", "request_id": self.rt.id,
                "sha256": self.sha.hexdigest(), "created": iso(self.rt.created_at),
                "duration": self.bytes_in / 32000, "channels": 1, "models": [MODEL_UUID],
                "model_info": {MODEL_UUID: {"name": self.model, "version": "1", "arch": self.model}}}

    # --- receiving ---------------------------------------------------------------------------
    async def run(self) -> None:
        watchdog = asyncio.get_running_loop().create_task(self._timeout_watchdog())
        closed_by_client_request = False
        try:
            while not self.closed:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self.last_activity = time.monotonic()
                if message.get("bytes") is not None:
                    self._on_audio(message["bytes"])
                elif message.get("text") is not None:
                    if await self._on_text(message["text"]):
                        closed_by_client_request = True
                        break
        except Exception as exc:  # noqa: BLE001 - the connection broke mid-receive
            log.debug("listen %s: receive ended: %r", self.rt.id, exc)
        finally:
            watchdog.cancel()
            self.closed = True
            if not closed_by_client_request:
                self.manager.detach(self.rt, self)
                await self.manager.finalize(self.rt, "deepgram-disconnect")

    def _on_audio(self, data: bytes) -> None:
        data = self.odd_byte + data
        cut = len(data) - len(data) % 2  # a sample split across frames waits for its other byte
        data, self.odd_byte = data[:cut], data[cut:]
        self.sha.update(data)
        self.bytes_in += len(data)
        step = self.manager.config.max_frame_bytes
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            self.manager.take_audio(self.rt, self.rt.received_offset, piece, stream_opened=self.opened)

    async def _on_text(self, text: str) -> bool:
        """Handles a control message; True when the stream is over (CloseStream)."""
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "KeepAlive":
            return False
        if kind == "Finalize":
            try:
                await self.manager.flush_mid_stream(self.rt, before_flush=self._flushing)
            finally:
                self.from_finalize = False
            return False
        if kind == "CloseStream":
            await self.manager.finalize(self.rt, "deepgram")
            await self._send(self.metadata())
            self.manager.detach(self.rt, self)  # the pipeline goes on without this connection
            await self.close(1000, "")
            return True
        await self._send({"type": "Error", "variant": "bad_message",
                          "description": f"unknown control message {text[:80]!r}; expected KeepAlive, Finalize or CloseStream",
                          "message": "unknown control message"})
        return False

    def _flushing(self) -> None:
        self.from_finalize = True  # finals from here on answer the Finalize

    async def _timeout_watchdog(self) -> None:
        timeout = self.manager.config.deepgram_timeout_s  # Deepgram's is 10 s
        while not self.closed:
            remaining = self.last_activity + timeout - time.monotonic()
            if remaining <= 0:
                await self.close(1011, f"NET-0001: no audio or message received within the {timeout:g} s timeout window")
                return
            await asyncio.sleep(remaining)


def _params(ws: WebSocket) -> dict[str, Any]:
    q = ws.query_params
    encoding = q.get("encoding", "linear16")
    if encoding != "linear16":
        raise SessionError(400, "bad_request", f"encoding must be linear16; got {encoding!r}", "encoding")
    try:
        sample_rate = int(q.get("sample_rate", "16000"))
        channels = int(q.get("channels", "1"))
        utterance_end_ms = int(q["utterance_end_ms"]) if q.get("utterance_end_ms") else None
    except ValueError as exc:
        raise SessionError(400, "bad_request", f"a numeric parameter is not a number: {exc}", "query") from exc
    if sample_rate != 16000:
        raise SessionError(400, "bad_request", f"sample_rate must be 16000; got {sample_rate}", "sample_rate")
    if channels != 1:
        raise SessionError(400, "bad_request", f"channels must be 1; got {channels}", "channels")
    return {"interim_results": _flag(q.get("interim_results"), False), "vad_events": _flag(q.get("vad_events"), False),
            "utterance_end_ms": utterance_end_ms, "endpointing": q.get("endpointing")}


async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
    body = {"err_code": code, "err_msg": message, "category": code, "message": message}
    await ws.send_denial_response(JSONResponse(body, status_code=status, headers={"dg-error": message}))


async def serve_listen(ws: WebSocket, manager: SessionManager, stats: Stats) -> None:
    if not manager.authorized(None, _credential(ws)):
        await _deny(ws, 401, "INVALID_AUTH", "Invalid credentials: send Authorization: Token <API key>")
        return
    try:
        params = _params(ws)
        model = ws.query_params.get("model")
        engine = model if model in ENGINES else manager.config.engine
        body = {"engine": engine, "sample_rate": 16000, "script": ws.query_params.get("script", ""),
                "metadata": {"protocol": "deepgram", **{k: v for k, v in params.items() if v is not None}}}
        rt, _token = await manager.create(body)
    except SessionError as exc:
        if exc.status != 503:
            await _deny(ws, exc.status, "Bad Request", exc.message)
            return
        subprotocol = "token" if ws.headers.get("sec-websocket-protocol", "").lower().startswith("token") else None
        await ws.accept(subprotocol=subprotocol)
        await ws.close(1013, "at capacity: try again later")
        return
    subprotocol = "token" if ws.headers.get("sec-websocket-protocol", "").lower().startswith("token") else None
    await ws.accept(subprotocol=subprotocol)
    stats.ws_opened()
    try:
        conn = DeepgramConnection(ws, rt, manager, params)

        async def no_ready(_committed: int) -> None:
            return None  # Deepgram sends nothing until it has results

        if not await manager.attach(rt, conn, -1, no_ready):
            await conn.close(4410, "session already finalized")
            return
        await conn.run()
    finally:
        stats.ws_closed()
