"""The codec interface and the small request types every codec speaks in.

A codec is sans-I/O: it turns configuration into HTTP and connect requests, audio and control
messages into frames, and received frames into normalized events (``protocols.events``). It owns
no socket and no clock, so the asyncio driver, the sync (Locust) driver and the hypothesis tests
all use the same code. This mirrors the ``websockets`` library, whose protocol core knows nothing
of asyncio or threads.

One codec instance serves one session: a codec may keep a little decoding state (Deepgram's codec
numbers segments in order of finals). :func:`harness.protocols.registry.get_codec` returns a new
instance on every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from harness.errors import BackendError
from harness.protocols.events import Closed, Event

BYTES_PER_SECOND = 32_000  # 16 kHz, mono, s16le: every protocol here streams this format
CONTROL_KINDS = ("finalize", "keepalive", "close_stream")


class ProtocolError(BackendError):
    """A frame that breaks the protocol. The message names the frame's problem (and quotes it)."""


class SessionCreateError(BackendError):
    """Creating a session was refused. Carries the HTTP status, the server's message and, for a
    503, the ``Retry-After`` seconds, so a caller can decide to wait and retry."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s
        detail = f"session creation refused: HTTP {status}: {message}"
        if retry_after_s is not None:
            detail += f" (Retry-After: {retry_after_s:g} s)"
        super().__init__(detail)

    @property
    def retryable(self) -> bool:
        return self.status in (429, 503)


@dataclass(frozen=True)
class StreamTarget:
    """Where a backend lives.

    ``stream_base_url`` overrides the WebSocket base (``ws://host:port``) so the stream can go
    through a fault proxy while HTTP calls go direct. http(s) schemes are mapped to ws(s). A
    ``tcp://host:port`` stream base is for protocols that stream over plain TCP (Wyoming).
    """

    http_url: str
    api_key: str
    stream_base_url: str | None = None

    def __post_init__(self) -> None:
        for name, schemes in (("http_url", ("http", "https", "ws", "wss")), ("stream_base_url", ("http", "https", "ws", "wss", "tcp"))):
            value = getattr(self, name)
            if value is None:
                continue
            parts = urlsplit(value)
            if parts.scheme not in schemes or not parts.hostname:
                raise ValueError(f"StreamTarget.{name} must be a URL with a host and one of the schemes "
                                 f"{', '.join(schemes)}; got {value!r}")

    @property
    def http_base(self) -> str:
        return self.http_url.rstrip("/")

    @property
    def ws_base(self) -> str:
        parts = urlsplit((self.stream_base_url or self.http_url).rstrip("/"))
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path, "", ""))

    def hosts(self) -> list[str]:
        """Every host this target sends traffic to (for the loopback safety rule)."""
        urls = [self.http_url] + ([self.stream_base_url] if self.stream_base_url else [])
        return [urlsplit(u).hostname or "" for u in urls]


@dataclass(frozen=True)
class SessionParams:
    """What to ask for when a session is created (or, for Deepgram, in the stream's query)."""

    engine: str = "scripted"
    sample_rate: int = 16_000
    script: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Deepgram live options; ignored by the reference protocol.
    interim_results: bool = True
    endpointing: int | bool | None = None
    utterance_end_ms: int | None = None
    vad_events: bool = False


@dataclass(frozen=True)
class SessionInfo:
    """A created session. ``session_id`` is None for protocols that learn it from the stream."""

    session_id: str | None
    token: str | None = None
    state: str | None = None
    stream_url: str | None = None
    params: SessionParams = field(default_factory=SessionParams)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP call relative to ``StreamTarget.http_url``."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None


TRANSPORTS = ("websocket", "tcp", "socketio")


@dataclass(frozen=True)
class ConnectRequest:
    """How to open the stream: absolute URL, extra headers, offered subprotocols, and the transport
    that carries the codec's frames (``harness.drivers.transports``):

    - ``websocket`` (``ws(s)://``): one frame is one WebSocket message.
    - ``tcp`` (``tcp://host:port``): frames are bytes written back to back; what is read is given
      to ``decode`` as it comes (the codec reassembles its own frames).
    - ``socketio`` (``http(s)://``, the Engine.IO path in ``socketio_path``): one frame is one
      Socket.IO event, packed by ``harness.protocols.socketio.pack_event``.
    """

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    subprotocols: tuple[str, ...] = ()
    transport: str = "websocket"
    socketio_path: str = "socket.io"

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"ConnectRequest.transport must be one of {', '.join(TRANSPORTS)}; got {self.transport!r}")


@runtime_checkable
class Codec(Protocol):
    """What drivers need from a protocol. See ``reference.py`` and ``deepgram.py``."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]  # what the protocol can do (protocols.capabilities)
    supports_resume: ClassVar[bool]  # the server tells where to resume and replays lost finals
    has_offsets: ClassVar[bool]  # audio frames carry byte offsets and the server acks them
    sends_ready: ClassVar[bool]  # the server sends a Ready event before audio may flow
    finalize_control: ClassVar[str]  # the control that ends the audio the protocol's way
    http_finalize: ClassVar[bool]  # finalize_request() gives an HTTP call

    def create_session_request(self, target: StreamTarget, params: SessionParams) -> HttpRequest | None: ...

    def parse_session_created(
        self, status: int, body: Any, headers: dict[str, str] | None = None, params: SessionParams | None = None
    ) -> SessionInfo: ...

    def local_session(self, params: SessionParams) -> SessionInfo: ...

    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest: ...

    def encode_audio(self, offset: int, pcm: bytes) -> bytes | str: ...  # str: a text frame (JSON)

    def encode_control(self, kind: str) -> str | None: ...

    def decode(self, frame: bytes | str) -> list[Event]: ...

    def closed(self, code: int, reason: str = "") -> Closed: ...

    def close_events(self, code: int, reason: str = "") -> list[Event]: ...

    def finalize_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest | None: ...

    def get_session_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest | None: ...

    # Optional (older codecs have neither; read them with the helpers below):
    # - ``opening_frames() -> list[bytes | str]``: frames to send right after each connection
    #   opens, before any audio (Speechmatics ``StartRecognition``, OpenAI ``session.update``).
    # - ``stream_finished: bool``: set by ``decode`` when the server has said the last result of a
    #   finalize, for protocols whose server never closes by itself (OpenAI Realtime): the client
    #   then closes 1000 and the session is complete.
    # - ``idle_timeout_s: float``: the documented idle timeout, for a protocol whose stream does not
    #   announce one (``ready.idle_timeout_s`` wins when it does); with the ``idle_timeout`` capability.
    # - ``idle_close: tuple[int, str]``: the close code and reason prefix the server uses for it.
    # - ``no_audio_errors: frozenset[str]``: error codes the protocol documents as the answer to a
    #   finalize with no audio, so they are not taken for a failure (OpenAI Realtime's
    #   ``input_audio_buffer_commit_empty``).


def opening_frames(codec: Codec) -> list[bytes | str]:
    """The frames ``codec`` sends first on a new connection (none if it defines no opening)."""
    method = getattr(codec, "opening_frames", None)
    return list(method()) if method is not None else []


def no_audio_errors(codec: Codec | type) -> frozenset[str]:
    """The error codes ``codec`` documents as the answer to finalizing no audio (see ``Codec``)."""
    return frozenset(getattr(codec, "no_audio_errors", frozenset()))


def stream_finished(codec: Codec) -> bool:
    """Whether ``codec`` has seen the end of the stream's results (see ``Codec``)."""
    return bool(getattr(codec, "stream_finished", False))


def idle_close(codec: Codec) -> tuple[int, str] | None:
    """The close ``codec``'s server documents for an idle stream (None: not documented)."""
    value = getattr(codec, "idle_close", None)
    return (int(value[0]), str(value[1])) if value else None


# --- helpers shared by codecs ----------------------------------------------------------------


def check_control_kind(kind: str) -> None:
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown control {kind!r}; expected one of {list(CONTROL_KINDS)}")


def check_audio(offset: int, pcm: bytes) -> None:
    """Audio given to ``encode_audio`` must be an even number of bytes at a non-negative offset."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**64:
        raise ValueError(f"audio offset must be an integer in [0, 2**64), got {offset!r}")
    if not isinstance(pcm, (bytes, bytearray, memoryview)):
        raise ValueError(f"audio payload must be bytes, got {type(pcm).__name__}")
    if len(pcm) % 2:
        raise ValueError(f"audio payload must be whole 16-bit samples (even length), got {len(pcm)} bytes")


def error_message(body: Any) -> str:
    """The human message in an error body, whatever shape the server chose."""
    if isinstance(body, dict):
        for key in ("message", "detail", "error", "description"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                return error_message(value)
            if isinstance(value, list) and value:
                return "; ".join(error_message(v) if isinstance(v, dict) else str(v) for v in value)
        return str(body)[:500]
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")[:500]
    return str(body)[:500]


def retry_after_seconds(headers: dict[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (delta form; an HTTP date is not used by these backends)."""
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None
