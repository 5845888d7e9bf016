"""Wyoming speech-to-text (Home Assistant's voice protocol) as a sans-I/O codec, over TCP
(``wyoming``) or over a WebSocket (``wyoming-ws``). Framing: ``wyoming_frames``.

No session step and no HTTP: each connection is one transcription. What goes out:

- Opening: ``transcribe`` (``language: en``; ``name`` = the engine when a script is asked for),
  then ``audio-start`` (16 kHz, width 2, mono, ``timestamp`` 0).
- Audio: ``audio-chunk`` with the same format fields, ``timestamp`` = milliseconds of the chunk's
  start on the session's clock, the PCM as payload. Wyoming has no offsets and no acks.
- Controls: finalize and close_stream -> ``audio-stop`` (the transcription ends there: Wyoming has
  no mid-stream flush); keepalive -> ``ping`` (answered ``pong``).

What comes back:

- ``transcript{text}``: the transcription of all the audio, one Final spanning it (Wyoming gives
  no word times and no segments: finals are numbered 0, 1 ... here, one per connection). An empty
  text is Info ``empty_transcript``. It also sets ``stream_finished``: a Wyoming server may keep
  the connection open for the next request, so once the answer to ``audio-stop`` is in, the
  driver closes (1000) and the session is complete.
- ``transcript-start`` / ``transcript-chunk{text}`` / ``transcript-stop`` (transcript streaming,
  Wyoming 1.7): each chunk extends the text so far, kept as a Partial of the open segment. Chunks
  only ever add text (they are not revisable interim results), so the codec does not declare
  ``partials``: the partial-cadence scenario is left out, named.
- ``error{text, code}``: Error. ``info``, ``pong`` and any other event: Info (Wyoming peers drop
  unknown events; the harness keeps them). Bytes that break the framing: ProtocolError.
- Over TCP the transport maps a clean end of the stream to close 1000 and a reset to 1006; over a
  WebSocket the close code is the server's.

Reference-server extensions (ignored by other Wyoming peers): ``transcribe.script`` gives the
scripted engine its words; ``transcript-start`` and ``transcript`` carry ``session_id``, the id
``GET /v1/sessions/{id}`` knows the session by.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

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
from harness.protocols.events import Closed, Error, Event, Final, Info, Partial
from harness.protocols.wyoming_frames import FrameParser, WyomingEvent, WyomingFrameError, encode_event

WIDTH, CHANNELS = 2, 1
WS_PATH = "/v1/wyoming"


class WyomingCodec:
    """Wyoming over TCP: the stream address is ``tcp://host:port`` (``StreamTarget.stream_base_url``,
    ``--stream-url``; the embedded reference server's own Wyoming port otherwise)."""

    name: ClassVar[str] = "wyoming"
    capabilities: ClassVar[frozenset[str]] = frozenset({"keepalive"})  # ping / pong
    supports_resume: ClassVar[bool] = False
    has_offsets: ClassVar[bool] = False
    sends_ready: ClassVar[bool] = False
    finalize_control: ClassVar[str] = "close_stream"
    http_finalize: ClassVar[bool] = False
    stream_transport: ClassVar[str] = "tcp"  # the embedded server's matching listener is found by this

    def __init__(self) -> None:
        self.next_segment_id = 0
        self.params = SessionParams()
        self.time_base_ms = 0.0  # session audio before this connection
        self.sent_ms = 0.0  # audio encoded on this connection
        self.stopped = False  # audio-stop went out on this connection
        self.stream_finished = False
        self.chunk_text = ""
        self.learned_session_id: str | None = None
        self._parser = FrameParser()

    # --- HTTP: none -----------------------------------------------------------------------
    def create_session_request(self, target: StreamTarget, params: SessionParams) -> None:
        return None

    def parse_session_created(
        self, status: int, body: Any, headers: dict[str, str] | None = None, params: SessionParams | None = None
    ) -> SessionInfo:
        raise ValueError("the Wyoming protocol has no session step; use local_session(params)")

    def local_session(self, params: SessionParams) -> SessionInfo:
        return SessionInfo(session_id=None, params=params)

    def finalize_request(self, target: StreamTarget, session: SessionInfo) -> None:
        return None  # audio-stop ends it

    def get_session_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest | None:
        """The reference server shows the session at GET /v1/sessions/{transcript-start.session_id}."""
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
        self._new_connection(session, resume_offset)
        base = target.stream_base_url or ""
        parts = urlsplit(base)
        if parts.scheme != "tcp" or not parts.port:
            raise ValueError(f"wyoming streams over TCP: give its address as tcp://host:port (--stream-url); got "
                             f"{base or 'none'} (for Wyoming over a WebSocket use --protocol wyoming-ws)")
        return ConnectRequest(f"tcp://{parts.hostname}:{parts.port}", transport="tcp")

    def _new_connection(self, session: SessionInfo, resume_offset: int | None) -> None:
        self.params = p = session.params
        if p.sample_rate != 16_000:
            raise ValueError(f"{self.name}: the harness streams 16000 Hz audio; got sample_rate={p.sample_rate}")
        self.time_base_ms = (resume_offset or 0) * 1000.0 / BYTES_PER_SECOND
        self.sent_ms = 0.0
        self.stopped = self.stream_finished = False
        self.chunk_text = ""
        self._parser = FrameParser()

    def _format(self) -> dict[str, Any]:
        return {"rate": self.params.sample_rate, "width": WIDTH, "channels": CHANNELS}

    def opening_frames(self) -> list[bytes]:
        transcribe: dict[str, Any] = {"language": "en"}
        if self.params.script:
            transcribe.update(name=self.params.engine, script=self.params.script)
        return [encode_event(WyomingEvent("transcribe", transcribe)),
                encode_event(WyomingEvent("audio-start", {**self._format(), "timestamp": 0}))]

    def encode_audio(self, offset: int, pcm: bytes) -> bytes:
        check_audio(offset, pcm)
        frame = encode_event(WyomingEvent("audio-chunk", {**self._format(), "timestamp": round(offset / 32)},
                                          bytes(pcm)))
        self.sent_ms += len(pcm) * 1000.0 / BYTES_PER_SECOND
        return frame

    def encode_control(self, kind: str) -> bytes:
        check_control_kind(kind)
        if kind == "keepalive":
            return encode_event(WyomingEvent("ping"))
        self.stopped = True
        return encode_event(WyomingEvent("audio-stop", {"timestamp": round(self.time_base_ms + self.sent_ms)}))

    def decode(self, frame: bytes | str) -> list[Event]:
        raw = frame.encode("utf-8") if isinstance(frame, str) else bytes(frame)
        try:
            events = self._parser.feed(raw)
        except WyomingFrameError as exc:
            raise ProtocolError(f"{self.name}: {exc}") from None
        self._check_message_end(raw)
        out: list[Event] = []
        for event in events:
            out += self._event(event)
        return out

    def _check_message_end(self, raw: bytes) -> None:
        """Over TCP an event may span reads; the WebSocket variant checks each message is whole."""

    def closed(self, code: int, reason: str = "") -> Closed:
        return Closed(code, reason)

    def close_events(self, code: int, reason: str = "") -> list[Event]:
        return [self.closed(code, reason)]

    # --- internals ------------------------------------------------------------------------
    def _learn(self, data: dict[str, Any]) -> None:
        sid = data.get("session_id")
        if isinstance(sid, str) and sid and not self.learned_session_id:
            self.learned_session_id = sid

    def _text(self, event: WyomingEvent) -> str:
        text = event.data.get("text")
        if not isinstance(text, str):
            raise ProtocolError(f"{self.name}: {event.type} needs a string 'text', got {text!r:.80}: {event.data!r:.120}")
        return text

    def _span(self) -> tuple[int, int]:
        return round(self.time_base_ms), round(self.time_base_ms + self.sent_ms)

    def _event(self, event: WyomingEvent) -> list[Event]:
        kind, data = event.type, event.data
        if kind == "transcript":
            self._learn(data)
            text = self._text(event).strip()
            start, end = self._span()
            self.chunk_text = ""
            if self.stopped:
                self.stream_finished = True  # the answer to audio-stop: nothing more comes
            if not text:
                return [Info("empty_transcript", {"start_ms": start, "end_ms": end})]
            segment_id = self.next_segment_id
            self.next_segment_id += 1
            return [Final(segment_id, text, start, end)]
        if kind == "transcript-chunk":
            self.chunk_text += self._text(event)
            start, end = self._span()
            return [Partial(self.next_segment_id, self.chunk_text.strip(), start, end)]
        if kind == "error":
            code = data.get("code")
            return [Error(code=str(code) if code else "error", message=str(data.get("text", "")), details=dict(data))]
        if kind == "transcript-start":
            self._learn(data)
        info = dict(data)
        if event.payload:
            info["payload_length"] = len(event.payload)
        return [Info(kind, info)]


class WyomingWsCodec(WyomingCodec):
    """Wyoming over a WebSocket (``GET /v1/wyoming``, ``Authorization: Bearer <key>``): one whole
    event per message, sent as a binary message; a message that ends inside an event is a
    ProtocolError (over TCP it would simply continue in the next read)."""

    name: ClassVar[str] = "wyoming-ws"
    stream_transport: ClassVar[str] = "websocket"

    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest:
        self._new_connection(session, resume_offset)
        return ConnectRequest(f"{target.ws_base}{WS_PATH}", {"Authorization": f"Bearer {target.api_key}"})

    def _check_message_end(self, raw: bytes) -> None:
        if not self._parser.at_boundary:
            self._parser = FrameParser()  # the next message starts a new event
            raise ProtocolError(f"{self.name}: a WebSocket message ended inside a Wyoming event (each message must "
                                f"carry whole events): {raw[:120]!r}")
