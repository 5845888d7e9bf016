"""A Socket.IO endpoint shaped like a Flask-SocketIO transcription system, over the shared
sessions (python-socketio's ``AsyncServer`` in ASGI mode, in front of the FastAPI app, at
``/socket.io``). docs/protocol.md has the events and their payloads.

Wire choices:
- Connect: the API key as Socket.IO ``auth`` (``{"token": KEY}``), ``Authorization: Bearer KEY``
  or the ``token`` query parameter; otherwise the connection is refused (``connect_error``
  ``{"message": "unauthorized: ...", "data": {"status": 401}}``). Engine.IO pings every ``heartbeat_s`` and drops a peer silent for
  ``heartbeat_s`` more (``--defect no-heartbeat`` turns that off).
- ``join_session {engine?, language?, sample_rate?, encoding?, script?}`` creates the session
  (``sample_rate`` 8000/16000/24000/44100/48000, ``encoding`` pcm_s16le, pcm_f32le, mulaw or alaw;
  converted to the engine's 16 kHz) -> ``joined_session {session_id, sample_rate, encoding}``.
- ``audio_chunk {session_id, seq?, offset?, audio}``: ``audio`` is binary (an ArrayBuffer or
  bytes; a base64 string is taken too). Taken into the session, then ``audio_acknowledged
  {session_id, seq, received_offset}`` (bytes of the client's audio taken so far). An ``offset``
  that is not the next byte: ``error {code: offset_mismatch, expected_offset}`` and the chunk is
  dropped (the socket stays). A chunk for another session id: ``error {code: unknown_session}``.
- Results: ``transcript_partial`` per interim result and ``transcript_final`` per final
  ``{session_id, segment_id, text, start_ms, end_ms}`` (finals with ``words``).
- ``end_session {session_id}``: the last finals, the shared finalize path, then
  ``session_finalized {session_id, transcript, segments}``; the socket stays open (one session
  per socket: a second ``join_session`` is an error), as a Flask-SocketIO app leaves it.
- Errors: ``error {code, message, session_id}``. Fatal ones (the engine failed, the session was
  deleted or the server is shutting down, capacity) are followed by the server's disconnect; bad
  payloads and unknown events are not. A socket that goes away ends (finalizes) its session.

Reference-server extensions: ``engine`` names one of this server's engines; ``script`` gives the
scripted engine its words.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import socketio
from starlette.datastructures import Headers, QueryParams

from ..config import ServerConfig
from .adapter import Action, Adapter, Audio, Close, Control, Finish, Open, Received, Send
from .audio import AudioConverter, AudioFormat, AudioFormatError
from .connection import serve_vendor

if TYPE_CHECKING:
    from ..server_parts import ServerState

log = logging.getLogger("reference_server.wire")
SOCKETIO_PATH = "socket.io"
_EVENTS = ("join_session", "audio_chunk", "end_session")


class SocketIOAdapter(Adapter):
    protocol = "socketio"
    binary_is_audio = False  # an event with an attachment: the adapter counts the audio itself

    def __init__(self, query: QueryParams, headers: Headers, config: ServerConfig) -> None:
        super().__init__(query, headers, config)
        self.join: dict[str, Any] = {}
        self.converter: AudioConverter | None = None
        self.received = 0  # bytes of the client's audio taken
        self.ended = False
        self.texts: list[str] = []

    def session_body(self) -> dict[str, Any]:
        body = self.body(self.join.get("engine"), language=self.join.get("language") or "en")
        body["script"] = self.join["script"] if isinstance(self.join.get("script"), str) else ""
        return body

    # --- events (packed by SocketIOSocket: {"event", "data"} text, or with binary fields) ---
    def on_text(self, text: str) -> list[Action]:
        packed = json.loads(text)
        return self._event(packed["event"], packed["data"])

    def on_bytes(self, data: bytes) -> list[Action]:
        head, _, attachment = data.partition(b"\n")
        packed = json.loads(head)
        body = dict(packed["data"])
        body[packed["binary"]] = attachment
        return self._event(packed["event"], body)

    def _error(self, code: str, message: str, **extra: Any) -> Send:
        return Send({"event": "error", "data": {"code": code, "message": message, "session_id": self.session_id,
                                                **extra}})

    def _fatal(self, code: str, message: str, close: int = 1011) -> list[Action]:
        return [self._error(code, message), Close(close, code)]

    def _event(self, event: str, data: Any) -> list[Action]:
        if event not in _EVENTS:
            return [Control(f"unknown:{event[:40]}"),
                    self._error("unknown_event", f"unknown event {event[:60]!r}; expected one of {', '.join(_EVENTS)}")]
        if not isinstance(data, dict):
            return [self._error("bad_payload", f"{event}: the payload must be an object, got {type(data).__name__}")]
        if event == "join_session":
            return self._join(data)
        if self.converter is None:
            return [self._error("not_joined", f"{event} before join_session")]
        if data.get("session_id") not in (None, self.session_id):
            return [self._error("unknown_session", f"{event}: session {str(data.get('session_id'))[:60]!r} is not "
                                                   f"this socket's ({self.session_id})")]
        if event == "audio_chunk":
            return self._chunk(data)
        if self.ended:
            return [self._error("already_ended", "end_session was already received")]
        self.ended = True
        return [Control("end_session"), Audio(self.converter.flush()), Finish()]

    def _join(self, data: dict[str, Any]) -> list[Action]:
        if self.converter is not None:
            return [self._error("already_joined", "join_session again: one session per socket")]
        encoding, rate = data.get("encoding", "pcm_s16le"), data.get("sample_rate", 16000)
        try:
            self.converter = AudioConverter(AudioFormat(encoding, rate))
        except AudioFormatError as exc:
            return [self._error("bad_audio_format", str(exc), field=exc.field)]
        self.join = data
        return [Control("join_session", {k: data[k] for k in ("engine", "sample_rate", "encoding") if k in data}),
                Open()]

    def _chunk(self, data: dict[str, Any]) -> list[Action]:
        audio = data.get("audio")
        if isinstance(audio, str):
            try:
                audio = base64.b64decode(audio, validate=True)
            except (binascii.Error, ValueError):
                return [self._error("bad_payload", "audio_chunk: audio is a string but not base64")]
        if not isinstance(audio, (bytes, bytearray)):
            return [self._error("bad_payload", f"audio_chunk: audio must be binary, got {type(audio).__name__}")]
        if self.ended:
            return [self._error("already_ended", "audio_chunk after end_session: not transcribed")]
        offset = data.get("offset")
        if offset is not None and offset != self.received:
            return [self._error("offset_mismatch", f"audio_chunk offset {offset!r} is not the next byte "
                                                   f"({self.received}): chunk dropped", expected_offset=self.received)]
        assert self.converter is not None
        self.received += len(audio)
        return [Received(len(audio)), Audio(self.converter.convert(bytes(audio))),
                Send({"event": "audio_acknowledged", "data": {"session_id": self.session_id, "seq": data.get("seq"),
                                                              "received_offset": self.received}})]

    # --- the session layer ---------------------------------------------------------------
    def on_session(self, session_id: str, created_at: float) -> list[Action]:
        super().on_session(session_id, created_at)
        assert self.converter is not None
        fmt = self.converter.format
        return [Send({"event": "joined_session", "data": {"session_id": session_id, "sample_rate": fmt.sample_rate,
                                                          "encoding": fmt.encoding}})]

    def on_refused(self, status: int, code: str, message: str) -> list[Action]:
        if status == 503:
            return self._fatal("capacity", message, 1013)
        self.converter = None  # not joined: the client may try again with other parameters
        return [self._error("bad_request", message)]

    def on_result(self, msg: dict[str, Any], *, is_final: bool) -> list[Action]:
        fields = ("segment_id", "text", "start_ms", "end_ms") + (("words",) if is_final else ())
        if is_final and msg.get("text", "").strip():
            self.texts.append(msg["text"].strip())
        return [Send({"event": "transcript_final" if is_final else "transcript_partial",
                      "data": {"session_id": self.session_id, **{k: msg.get(k) for k in fields}}})]

    def on_finished(self) -> list[Action]:
        return [Send({"event": "session_finalized", "data": {"session_id": self.session_id,
                                                             "transcript": " ".join(self.texts),
                                                             "segments": len(self.texts)}})]

    def on_engine_error(self, message: str) -> list[Action]:
        return self._fatal("engine_error", message)

    def on_server_close(self, code: int, reason: str) -> list[Action]:
        return self._fatal("session_closed", reason or f"the server closed the session ({code})", code)

    def on_finalized_audio(self) -> list[Action]:
        return [self._error("already_ended", "the session was finalized: audio from here on is not transcribed")]


# --- I/O: the Socket.IO server and one socket-shaped object per connection ---------------------
class SocketIOSocket:
    """One Socket.IO connection shaped like the part of Starlette's WebSocket that
    ``serve_vendor`` uses: events the client emits come out of ``receive`` packed as the adapter
    reads them; ``send_text`` of a ``{"event", "data"}`` message emits it; ``close`` disconnects."""

    def __init__(self, sio: socketio.AsyncServer, sid: str, environ: dict[str, Any]) -> None:
        self.sio, self.sid = sio, sid
        self.query_params = QueryParams(environ.get("QUERY_STRING", ""))
        self.headers = Headers({k[5:].lower().replace("_", "-"): v for k, v in environ.items()
                                if k.startswith("HTTP_") and isinstance(v, str)})
        self.url = SimpleNamespace(path=f"/{SOCKETIO_PATH}")
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closing = False

    def emitted(self, event: str, data: Any) -> None:
        """An event from the client, packed for the adapter (binary fields after a header line)."""
        binary = [k for k, v in data.items() if isinstance(v, (bytes, bytearray))] if isinstance(data, dict) else []
        if binary:
            head = json.dumps({"event": event, "data": {k: v for k, v in data.items() if k != binary[0]},
                               "binary": binary[0]}, default=str)
            self.queue.put_nowait({"type": "websocket.receive", "bytes": head.encode() + b"\n" + bytes(data[binary[0]])})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "text": json.dumps({"event": event, "data": data},
                                                                                  default=str)})

    def gone(self, code: int, reason: str) -> None:
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})

    async def receive(self) -> dict[str, Any]:
        return await self.queue.get()

    async def accept(self, subprotocol: str | None = None) -> None:
        return None  # accepted by the connect handler

    async def send_denial_response(self, response: Any) -> None:
        await self.close(1008, "refused")

    async def send_text(self, text: str) -> None:
        message = json.loads(text)
        await self.sio.emit(message["event"], message["data"], to=self.sid)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        await self.sio.disconnect(self.sid)
        self.gone(code, reason)


def build_server(state: ServerState) -> socketio.AsyncServer:
    """The Socket.IO server: each connection runs ``serve_vendor`` with a SocketIOAdapter."""
    config = state.config
    heartbeat = config.heartbeat_s if config.heartbeat_enabled else 24 * 3600.0  # defect no-heartbeat
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", async_handlers=False,
                               ping_interval=heartbeat, ping_timeout=heartbeat,
                               max_http_buffer_size=max(1 << 20, 4 * config.max_frame_bytes))
    sockets: dict[str, SocketIOSocket] = {}
    tasks: set[asyncio.Task[None]] = set()

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        sock = SocketIOSocket(sio, sid, environ)
        credential = auth.get("token") if isinstance(auth, dict) else None
        scheme, _, value = sock.headers.get("authorization", "").partition(" ")
        credential = credential or (value.strip() if scheme.lower() in ("bearer", "token") else None) \
            or sock.query_params.get("token")
        if not state.manager.authorized(None, credential):
            raise socketio.exceptions.ConnectionRefusedError(  # data.status: the HTTP status it stands for
                "unauthorized: give the API key as auth={'token': KEY} or Authorization: Bearer KEY", {"status": 401})
        sockets[sid] = sock

        async def serve() -> None:
            try:
                await serve_vendor(sock, state, SocketIOAdapter, authenticate=False)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - one socket's failure must not reach the server
                log.exception("socketio %s: connection failed", sid)
            finally:
                sockets.pop(sid, None)
                if not sock.closing:
                    sock.closing = True
                    await sio.disconnect(sid)

        task = asyncio.get_running_loop().create_task(serve())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        sock = sockets.get(sid)
        if sock is not None and not sock.closing:
            by_client = reason == "client disconnect"
            sock.gone(1000 if by_client else 1006, str(reason or ""))

    @sio.on("*")
    async def any_event(event: str, sid: str, *args: Any) -> None:
        sock = sockets.get(sid)
        if sock is not None:
            sock.emitted(event, args[0] if args else None)

    return sio
