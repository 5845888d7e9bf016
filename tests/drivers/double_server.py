"""A test double of a streaming backend, for the drivers' tests.

Its purpose: produce exact close codes, dropped connections, lost finals, audio gaps, 503s and
replays *on demand*, which the real reference server only does under real faults. It speaks just
enough of PROTOCOL.md (reference v1: sessions over HTTP, /v1/stream) and of the Deepgram subset
(/v1/listen) with scripted-engine semantics: word i covers stream bytes [i*W, (i+1)*W) and is
emitted once the double has taken audio through (i+1)*W; a final closes every ``segment_words``
words and at finalize (a trailing partial word is not emitted).

It runs on its own event loop in a background thread, on 127.0.0.1 with ports picked by the OS
(one for HTTP, one for WebSocket, so tests also exercise StreamTarget.stream_base_url).
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

PIPELINE_EVENTS = [
    "session_finalized",
    "refinement_started", "refinement_ready",
    "analytics_started", "analytics_ready",
    "tasks_started", "tasks_ready",
    "summary_started", "summary_ready",
    "post_transcription_reveal", "dashboard_refresh",
]


@dataclass
class Faults:
    """One-shot misbehaviours (each fires once, then the double behaves)."""

    create_503: int = 0  # answer this many POST /v1/sessions with 503 + Retry-After: 0
    close_after_bytes: tuple[int, int] | None = None  # (bytes taken, close code)
    drop_after_bytes: int | None = None  # abort the TCP connection (client sees 1006)
    restart_after_bytes: int | None = None  # forget audio past the durable offset, then drop
    lose_final: int | None = None  # never send this segment id live the first time (replay has it)
    skip_frame_at: int | None = None  # silently lose the frame at this offset (next one is a gap)
    capacity_closes: int = 0  # close this many first connections with 1013 right after accept
    deepgram_net0001_after_bytes: int | None = None  # Deepgram: close 1011 "NET-0001"


@dataclass
class Session:
    id: str
    token: str
    words: list[str]
    word_bytes: int
    segment_words: int
    received: bytearray = field(default_factory=bytearray)
    finals: list[dict[str, Any]] = field(default_factory=list)
    emitted_words: int = 0
    state: str = "created"
    events: list[str] = field(default_factory=list)
    ws: ServerConnection | None = None
    finalize_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def durable(self) -> int:
        return self.finals[-1]["boundary"] if self.finals else 0


class DoubleServer:
    def __init__(self, api_key: str = "double-key", faults: Faults | None = None) -> None:
        self.api_key = api_key
        self.faults = faults or Faults()
        self.sessions: dict[str, Session] = {}
        self.connections = 0
        self._closing: set[int] = set()
        self.loop = asyncio.new_event_loop()
        self.http_port = 0
        self.ws_port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Future[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> DoubleServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("double server did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loop.call_soon_threadsafe(lambda: self._stop and not self._stop.done() and self._stop.set_result(None))
        self._thread.join(10)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stop = self.loop.create_future()
        http = await asyncio.start_server(self._http, "127.0.0.1", 0)
        async with serve(self._ws, "127.0.0.1", 0, ping_interval=None, compression=None) as ws_server:
            self.http_port = http.sockets[0].getsockname()[1]
            self.ws_port = ws_server.sockets[0].getsockname()[1]
            self._started.set()
            await self._stop
        http.close()
        await http.wait_closed()

    # --- HTTP ---------------------------------------------------------------------------
    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            status, payload, extra = await self._route(method, urlsplit(target).path, headers, body)
            data = json.dumps(payload).encode() if payload is not None else b""
            head_out = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(data)}",
                        "Connection: close"] + [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode() + data)
            await writer.drain()
        finally:
            writer.close()

    async def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "missing or wrong API key"}}, {}
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "sessions"]:
            if self.faults.create_503 > 0:
                self.faults.create_503 -= 1
                return 503, {"error": {"message": "at capacity"}}, {"Retry-After": "0"}
            req = json.loads(body or b"{}")
            if req.get("engine") != "scripted" or not req.get("script"):
                return 400, {"error": {"message": "engine: only 'scripted' with a script here"}}, {}
            meta = req.get("metadata") or {}
            s = Session(uuid.uuid4().hex, uuid.uuid4().hex, req["script"].split(),
                        int(meta.get("script_word_ms", 300)) * 32, int(meta.get("script_segment_words", 5)))
            self.sessions[s.id] = s
            return 201, {"session_id": s.id, "token": s.token, "state": s.state,
                         "stream_url": f"/v1/stream?session_id={s.id}", "created_at": "now"}, {}
        if len(parts) >= 3 and parts[:2] == ["v1", "sessions"] and parts[2] in self.sessions:
            s = self.sessions[parts[2]]
            if method == "GET" and len(parts) == 3:
                return 200, self._view(s), {}
            if method == "POST" and parts[3:] == ["finalize"]:
                asyncio.ensure_future(self._finalize(s))
                return 202, self._view(s), {}
        return 404, {"error": {"message": f"no route {method} {path}"}}, {}

    def _view(self, s: Session) -> dict[str, Any]:
        return {"session_id": s.id, "state": s.state, "received_offset": len(s.received), "durable_offset": s.durable,
                "finals": [{k: v for k, v in f.items() if k != "boundary"} for f in s.finals], "events": list(s.events)}

    # --- reference stream ---------------------------------------------------------------
    async def _ws(self, ws: ServerConnection) -> None:
        url = urlsplit(ws.request.path)
        if url.path == "/v1/listen":
            await self._deepgram(ws, parse_qs(url.query))
            return
        self.connections += 1
        query = parse_qs(url.query)
        s = self.sessions.get(query.get("session_id", [""])[0])
        if s is None:
            await ws.close(4404, "unknown session")
            return
        if ws.request.headers.get("Authorization") not in (f"Bearer {s.token}", f"Bearer {self.api_key}"):
            await ws.close(1008, "not authorized")
            return
        if self.faults.capacity_closes > 0:
            self.faults.capacity_closes -= 1
            await ws.close(1013, "at capacity")
            return
        if s.state in ("processing", "completed"):
            await ws.close(4410, "session already finalized")
            return
        if s.ws is not None:
            await s.ws.close(4409, "superseded")
        s.ws = ws
        s.state = "streaming"
        last = int(query.get("last_segment_id", ["-1"])[0])
        await ws.send(json.dumps({"type": "ready", "session_id": s.id, "committed_offset": len(s.received),
                                  "sample_rate": 16000, "heartbeat_s": 5, "idle_timeout_s": 15,
                                  "max_frame_bytes": 32768}))
        for f in s.finals:
            if f["segment_id"] > last:
                await ws.send(self._final_msg(f))
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    if json.loads(frame).get("type") == "finalize":
                        await self._finalize(s)
                        return
                    continue
                if id(ws) not in self._closing:
                    await self._audio(s, ws, frame)
        except ConnectionClosed:
            pass
        finally:
            if s.ws is ws:
                s.ws = None
                if s.state == "streaming":
                    s.state = "interrupted"

    async def _audio(self, s: Session, ws: ServerConnection, frame: bytes) -> None:
        (offset,), pcm = struct.unpack_from("<Q", frame), frame[8:]
        f = self.faults
        if f.skip_frame_at is not None and offset == f.skip_frame_at:
            f.skip_frame_at = None
            return
        received = len(s.received)
        if offset > received:
            await ws.send(json.dumps({"type": "error", "code": "audio_gap", "message": "gap", "retryable": True,
                                      "expected_offset": received}))
            return
        tail = pcm[received - offset:]
        s.received += tail
        await self._emit_words(s, ws, final_at_end=False)
        await ws.send(json.dumps({"type": "ack", "received_offset": len(s.received), "durable_offset": s.durable}))
        n = len(s.received)
        if f.close_after_bytes and n >= f.close_after_bytes[0]:
            code, f.close_after_bytes = f.close_after_bytes[1], None
            # Close in the background and keep reading (ignoring audio) so the client's close
            # frame, queued behind audio it already sent, is read and the handshake completes.
            self._closing.add(id(ws))
            asyncio.ensure_future(ws.close(code, "double: planned close"))
        elif f.drop_after_bytes is not None and n >= f.drop_after_bytes:
            f.drop_after_bytes = None
            ws.transport.abort()
        elif f.restart_after_bytes is not None and n >= f.restart_after_bytes:
            f.restart_after_bytes = None
            del s.received[s.durable:]  # what a crash loses: everything past the durable offset
            s.emitted_words = sum(len(x["words"]) for x in s.finals)
            ws.transport.abort()

    async def _emit_words(self, s: Session, ws: ServerConnection | None, final_at_end: bool) -> None:
        while (s.emitted_words + 1) * s.word_bytes <= len(s.received):
            s.emitted_words += 1
            open_words = s.emitted_words - sum(len(x["words"]) for x in s.finals)
            if open_words >= s.segment_words:
                await self._close_segment(s, ws)
            elif ws is not None:
                seg = self._open_segment(s)
                await ws.send(json.dumps({"type": "partial", "segment_id": len(s.finals), "text": seg["text"],
                                          "start_ms": seg["start_ms"], "end_ms": seg["end_ms"]}))
        if final_at_end and self._open_segment(s)["words"]:
            await self._close_segment(s, ws)

    def _open_segment(self, s: Session) -> dict[str, Any]:
        first = sum(len(x["words"]) for x in s.finals)
        ms = s.word_bytes // 32
        words = [{"word": s.words[i % len(s.words)], "start_ms": i * ms, "end_ms": (i + 1) * ms, "confidence": 1.0}
                 for i in range(first, s.emitted_words)]
        return {"segment_id": len(s.finals), "text": " ".join(w["word"] for w in words),
                "start_ms": first * ms, "end_ms": s.emitted_words * ms, "words": words,
                "boundary": s.emitted_words * s.word_bytes}

    async def _close_segment(self, s: Session, ws: ServerConnection | None) -> None:
        seg = self._open_segment(s)
        s.finals.append(seg)
        if ws is None:
            return
        if self.faults.lose_final == seg["segment_id"]:
            self.faults.lose_final = None
            return
        await ws.send(self._final_msg(seg))

    @staticmethod
    def _final_msg(f: dict[str, Any]) -> str:
        return json.dumps({"type": "final", **{k: v for k, v in f.items() if k != "boundary"}})

    async def _finalize(self, s: Session) -> None:
        async with s.finalize_lock:
            if s.state in ("processing", "completed"):
                return
            ws = s.ws
            s.state = "processing"
            try:
                await self._emit_words(s, ws, final_at_end=True)
                for name in PIPELINE_EVENTS:
                    s.events.append(name)
                    if ws is not None:
                        await ws.send(json.dumps({"type": "event", "name": name, "at": 0, "data": {}}))
                s.state = "completed"
                if ws is not None:
                    await ws.close(1000, "session complete")
            except ConnectionClosed:
                s.state = "completed"

    # --- Deepgram subset ----------------------------------------------------------------
    async def _deepgram(self, ws: ServerConnection, query: dict[str, list[str]]) -> None:
        self.connections += 1
        if ws.request.headers.get("Authorization") != f"Token {self.api_key}":
            await ws.close(1008, "DATA-0001 not authorized")
            return
        words = ["alpha", "bravo", "charlie", "delta", "echo"]
        request_id = uuid.uuid4().hex
        word_bytes, received, emitted, seg_start = 3200, 0, 0, 0  # 100 ms words, 3 per final
        pending: list[dict[str, Any]] = []

        def results(is_final: bool, from_finalize: bool = False) -> str:
            start = seg_start * 0.1
            return json.dumps({
                "type": "Results", "channel_index": [0, 1], "start": start, "duration": len(pending) * 0.1,
                "is_final": is_final, "speech_final": is_final and not from_finalize, "from_finalize": from_finalize,
                "channel": {"alternatives": [{"transcript": " ".join(w["word"] for w in pending), "confidence": 1.0,
                                              "words": pending}]},
                "metadata": {"request_id": request_id, "model_info": {"name": "double"}},
            })

        try:
            async for frame in ws:
                if isinstance(frame, str):
                    kind = json.loads(frame).get("type")
                    if kind in ("Finalize", "CloseStream") and pending:
                        await ws.send(results(True, from_finalize=True))
                        seg_start, pending = emitted, []
                    if kind == "CloseStream":
                        await ws.send(json.dumps({"type": "Metadata", "request_id": request_id,
                                                  "duration": received / 32000, "channels": 1}))
                        await ws.close(1000, "")
                        return
                    continue
                received += len(frame)
                while (emitted + 1) * word_bytes <= received:
                    i = emitted
                    pending.append({"word": words[i % len(words)], "start": i * 0.1, "end": (i + 1) * 0.1,
                                    "confidence": 1.0})
                    emitted += 1
                    if len(pending) >= 3:
                        await ws.send(results(True))
                        seg_start, pending = emitted, []
                    else:
                        await ws.send(results(False))
                limit = self.faults.deepgram_net0001_after_bytes
                if limit is not None and received >= limit:
                    self.faults.deepgram_net0001_after_bytes = None
                    await ws.close(1011, "NET-0001")
                    return
        except ConnectionClosed:
            pass
