"""A Socket.IO transcription service shaped like a Flask-SocketIO system, as a sans-I/O codec.
The frames are Socket.IO events; ``harness.drivers.transports`` carries them over python-socketio's
``AsyncClient`` (Engine.IO over a WebSocket, at ``/socket.io``). docs/protocol.md has the events.

Connect with ``Authorization: Bearer <key>`` (or Socket.IO ``auth={"token": key}``); a refusal is
a ``connect_error``. Then, one session per connection:

- ``join_session`` ``{engine?, language, sample_rate, encoding, script?}`` -> ``joined_session``
  ``{session_id, sample_rate, encoding}``: a Ready (the session exists; audio may flow).
- ``audio_chunk`` ``{session_id, seq, offset, audio: <binary>}`` -> ``audio_acknowledged``
  ``{session_id, seq, received_offset}``: an Ack. ``offset`` is the chunk's byte offset in the
  session; the server answers an offset that is not the next byte with ``error{code:
  offset_mismatch, expected_offset}`` and drops the chunk. The protocol promises no durability
  and no resume, so an ack means taken into the session (``durable_offset`` = ``received_offset``)
  and the codec does not declare ``offsets``.
- ``transcript_partial`` / ``transcript_final`` ``{session_id, segment_id, text, start_ms, end_ms,
  words?}``: Partial / Final, with the server's segment ids (``segment_ids``).
- ``end_session`` ``{session_id}`` -> the last finals, then ``session_finalized``
  ``{session_id, transcript, segments}``; the server keeps the socket open (as Flask-SocketIO apps
  do), so that answer sets ``stream_finished`` and the driver disconnects (1000).
- ``error`` ``{code, message, session_id?}``: Error (a fatal one is followed by the server's
  disconnect). Anything else: Info.

No keepalive message: Engine.IO's own ping/pong keeps a silent socket open. A disconnect by the
server is close 1000, a lost transport 1006 (``transports``).

Frames between this codec and the transport: a text frame is the JSON ``{"event": E, "data": D}``;
an event with binary fields (the audio) is bytes: that JSON with ``"binary": {field: length}``,
a newline, then the fields' bytes in that order (:func:`pack_event` / :func:`unpack_event`).
Reference-server extensions: ``join_session.engine`` names one of its engines and ``script`` gives
the scripted engine its words.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from harness.protocols._fields import Fields
from harness.protocols.base import (
    BYTES_PER_SECOND,
    ConnectRequest,
    HttpRequest,
    ProtocolError,
    SessionInfo,
    SessionParams,
    StreamTarget,
    check_audio,
    check_control_kind,
)
from harness.protocols.events import Ack, Closed, Error, Event, Final, Info, Partial, Ready, Word

SOCKETIO_PATH = "socket.io"


# --- frames: one Socket.IO event each ----------------------------------------------------------
def pack_event(event: str, data: Any = None) -> bytes | str:
    """One event as a frame (text, or bytes when ``data`` has top-level binary fields)."""
    if not isinstance(event, str) or not event:
        raise ValueError(f"a Socket.IO event needs a non-empty name, got {event!r}")
    if isinstance(data, dict):
        binary = {k: bytes(v) for k, v in data.items() if isinstance(v, (bytes, bytearray, memoryview))}
        if binary:
            rest = {k: v for k, v in data.items() if k not in binary}
            header = json.dumps({"event": event, "data": rest, "binary": {k: len(v) for k, v in binary.items()}})
            return header.encode("utf-8") + b"\n" + b"".join(binary.values())
    return json.dumps({"event": event, "data": data})


def unpack_event(frame: bytes | str) -> tuple[str, Any]:
    """(event, data) of a frame made by :func:`pack_event`; ProtocolError naming what is wrong."""
    attachments = b""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raw = bytes(frame)
        head, newline, attachments = raw.partition(b"\n")
        if not newline:
            raise ProtocolError(f"socketio: a binary frame without its header line: {raw[:120]!r}")
        text = head.decode("utf-8", "replace")
    else:
        text = frame
    try:
        packed = json.loads(text)
    except ValueError:
        raise ProtocolError(f"socketio: a frame that is not a packed event: {text[:120]!r}") from None
    if not isinstance(packed, dict) or not isinstance(packed.get("event"), str):
        raise ProtocolError(f"socketio: a packed event needs a string 'event': {text[:120]!r}")
    data = packed.get("data")
    binary = packed.get("binary") or {}
    if binary:
        if not isinstance(data, dict) or not isinstance(binary, dict) or \
                any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in binary.values()):
            raise ProtocolError(f"socketio: bad binary fields in a packed event: {text[:120]!r}")
        if sum(binary.values()) != len(attachments):
            raise ProtocolError(f"socketio: {packed['event']}: the binary fields say {sum(binary.values())} bytes, "
                                f"the frame has {len(attachments)}")
        at = 0
        for key, n in binary.items():
            data[key], at = attachments[at:at + n], at + n
    return packed["event"], data


# --- the codec ---------------------------------------------------------------------------------
class SocketIOCodec:
    name: ClassVar[str] = "socketio"
    capabilities: ClassVar[frozenset[str]] = frozenset({"api_key", "ready", "segment_ids", "partials",
                                                                "endpointing"})
    supports_resume: ClassVar[bool] = False
    has_offsets: ClassVar[bool] = False
    sends_ready: ClassVar[bool] = True
    finalize_control: ClassVar[str] = "close_stream"
    http_finalize: ClassVar[bool] = False
    stream_transport: ClassVar[str] = "socketio"

    def __init__(self) -> None:
        self.params = SessionParams()
        self.session_id: str | None = None  # this connection's (joined_session)
        self.learned_session_id: str | None = None  # the first one (the history's)
        self.base = 0  # session audio (bytes) sent before this connection
        self.seq = 0
        self.ended = False  # end_session went out on this connection
        self.stream_finished = False

    # --- HTTP: none -----------------------------------------------------------------------
    def create_session_request(self, target: StreamTarget, params: SessionParams) -> None:
        return None

    def parse_session_created(
        self, status: int, body: Any, headers: dict[str, str] | None = None, params: SessionParams | None = None
    ) -> SessionInfo:
        raise ValueError("this Socket.IO protocol creates sessions with join_session; use local_session(params)")

    def local_session(self, params: SessionParams) -> SessionInfo:
        return SessionInfo(session_id=None, params=params)

    def finalize_request(self, target: StreamTarget, session: SessionInfo) -> None:
        return None

    def get_session_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest | None:
        """The reference server shows the session at GET /v1/sessions/{joined_session.session_id}."""
        if not session.session_id:
            return None
        return HttpRequest("GET", f"/v1/sessions/{session.session_id}", {"Authorization": f"Bearer {target.api_key}"})

    # --- stream ---------------------------------------------------------------------------
    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest:
        self.params = session.params
        self.base = resume_offset or 0
        self.session_id, self.seq, self.ended, self.stream_finished = None, 0, False, False
        parts = urlsplit(target.ws_base)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        url = urlunsplit((scheme, parts.netloc, parts.path, "", ""))
        return ConnectRequest(url, {"Authorization": f"Bearer {target.api_key}"}, transport="socketio",
                              socketio_path=SOCKETIO_PATH)

    def opening_frames(self) -> list[bytes | str]:
        p = self.params
        join: dict[str, Any] = {"language": "en", "sample_rate": p.sample_rate, "encoding": "pcm_s16le"}
        if p.script:
            join.update(engine=p.engine, script=p.script)
        return [pack_event("join_session", join)]

    def encode_audio(self, offset: int, pcm: bytes) -> bytes | str:
        check_audio(offset, pcm)
        if offset < self.base:
            raise ValueError(f"socketio: audio at offset {offset} is before this connection's start {self.base}")
        self.seq += 1
        return pack_event("audio_chunk", {"session_id": self.session_id, "seq": self.seq,
                                          "offset": offset - self.base, "audio": bytes(pcm)})

    def encode_control(self, kind: str) -> bytes | str | None:
        check_control_kind(kind)
        if kind == "keepalive":
            return None  # Engine.IO's ping/pong keeps the socket open
        self.ended = True
        return pack_event("end_session", {"session_id": self.session_id})

    def decode(self, frame: bytes | str) -> list[Event]:
        event, data = unpack_event(frame)
        if not isinstance(data, dict):
            raise ProtocolError(f"socketio: {event}: the data must be an object, got {data!r:.80}")
        f = Fields(data, f"socketio {event}", frame if isinstance(frame, str) else frame[:200])
        if event == "joined_session":
            self.session_id = f.str("session_id")
            self.learned_session_id = self.learned_session_id or self.session_id
            return [Ready(self.session_id, self.base, f.int("sample_rate", self.params.sample_rate))]
        if event == "audio_acknowledged":
            received = self.base + f.int("received_offset")
            return [Ack(received, received)]
        if event in ("transcript_partial", "transcript_final"):
            return [self._result(f, final=event == "transcript_final")]
        if event == "session_finalized":
            if self.ended:
                self.stream_finished = True
            return [Info(event, dict(data))]
        if event == "error":
            return [Error(code=f.str("code", "error"), message=f.str("message", ""), details=dict(data))]
        return [Info(event, dict(data))]

    def closed(self, code: int, reason: str = "") -> Closed:
        return Closed(code, reason)

    def close_events(self, code: int, reason: str = "") -> list[Event]:
        return [self.closed(code, reason)]

    # --- internals ------------------------------------------------------------------------
    def _ms(self, value: int) -> int:
        return round(self.base * 1000 / BYTES_PER_SECOND) + value

    def _result(self, f: Fields, final: bool) -> Event:
        segment_id, text = f.int("segment_id"), f.str("text")
        start, end = self._ms(f.ms("start_ms")), self._ms(f.ms("end_ms"))
        if end < start:
            raise ProtocolError(f"{f.what}: end_ms is before start_ms: {f.frame!r:.120}")
        if not final:
            return Partial(segment_id, text, start, end)
        words = []
        for i, raw in enumerate(f.list("words", [])):
            w = f.sub(f"words[{i}]", raw, f"words[{i}]")
            words.append(Word(w.str("word"), self._ms(w.ms("start_ms")), self._ms(w.ms("end_ms")),
                              float(w.number("confidence", 1.0))))
        return Final(segment_id, text, start, end, tuple(words))
