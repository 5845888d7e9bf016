"""The shape of a vendor wire adapter: frames in, session calls out; session results in, frames out.

An adapter is sans-I/O: it never touches a socket, a session or a clock. Each of its methods
takes one thing that happened (a text or binary frame, a result from the session layer, the end
of a flush) and returns the list of ``Action`` values the connection driver (``connection.py``)
carries out, in order. So adding a vendor is one module: its adapter, with its wire choices in its
docstring, tested by feeding it frames, plus a route in ``app.py``.

The session behind every adapter is the one ``/v1/stream`` and ``/v1/listen`` use: same engines,
same finalize path and pipeline, same tracker, visible at ``GET /v1/sessions/{id}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers, QueryParams

from ..config import ServerConfig
from ..engines import ENGINES


@dataclass(frozen=True)
class Deny:
    """Refuse the WebSocket handshake with an HTTP response (only as the first action)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Send:
    """A JSON text frame to the client."""

    message: dict[str, Any]


@dataclass(frozen=True)
class SendRaw:
    """A frame sent exactly as given (bytes: a binary message, or the bytes of a TCP stream; str:
    a text message), for protocols whose frames are not one JSON object (Wyoming)."""

    frame: bytes | str


@dataclass(frozen=True)
class Open:
    """Create the session now (``Adapter.session_body``), attach, then ``Adapter.on_session``."""


@dataclass(frozen=True)
class Audio:
    """16 kHz s16le audio for the session's engine (the adapter has converted it)."""

    pcm: bytes


@dataclass(frozen=True)
class Flush:
    """Flush the engine mid-stream (it goes on taking audio), then ``Adapter.on_flushed``."""


@dataclass(frozen=True)
class Finish:
    """The shared finalize path (last finals, then the pipeline in the background); then the
    connection lets go of the session and runs ``Adapter.on_finished``."""


@dataclass(frozen=True)
class Close:
    code: int
    reason: str = ""


@dataclass(frozen=True)
class Control:
    """Record a control message in the connection record (``/debug/connections``)."""

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """An audio frame that came inside a text message (OpenAI's base64 appends): recorded and
    counted like a binary frame, ``n_bytes`` as decoded."""

    n_bytes: int


Action = Deny | Send | SendRaw | Open | Audio | Flush | Finish | Close | Control | Received


class Adapter:
    """Defaults every adapter shares; a vendor module overrides what its protocol defines."""

    protocol = "unknown"
    subprotocol: str | None = None  # answered at accept
    idle_timeout_s: float | None = None  # on_idle() after this long without a frame
    tick_s: float | None = None  # on_tick() this often while the engine is idle
    open_at_connect = False  # create the session as soon as the connection is accepted
    create_before_accept = False  # create it during the handshake (a refusal can still be a Deny)
    # Binary frames are audio, counted by the connection as they arrive. False where a binary
    # frame carries framing as well (Wyoming): the adapter then reports its audio with Received.
    binary_is_audio = True

    def __init__(self, query: QueryParams, headers: Headers, config: ServerConfig) -> None:
        self.query = query
        self.headers = headers
        self.config = config
        self.default_engine = config.engine
        self.tag: str | None = query.get("tag") or None
        self.session_id: str | None = None

    # --- handshake -------------------------------------------------------------------------
    def credential(self) -> str | None:
        """The API key the client presented, however this vendor carries it."""
        return None

    def unauthorized(self) -> list[Action]:
        return [Deny(401, {"error": "unauthorized"})]

    def on_connect(self) -> list[Action]:
        """After auth, before accept: check the query; a Deny first refuses the handshake."""
        return []

    def session_body(self) -> dict[str, Any]:
        """The session creation request (validated like ``POST /v1/sessions``)."""
        return self.body(self.query.get("model"))

    def body(self, model: str | None, **metadata: Any) -> dict[str, Any]:
        """The reference-server extensions every vendor endpoint has: a model that names one of
        this server's engines chooses it (any other means the default engine), and the ``script``
        query parameter gives the scripted engine its words."""
        engine = model if model in ENGINES else self.default_engine
        extra = {"tag": self.tag} if self.tag else {}
        return {"engine": engine, "sample_rate": 16000, "script": self.query.get("script", ""),
                "metadata": {"protocol": self.protocol, **extra, **metadata}}

    # --- frames from the client ------------------------------------------------------------
    def on_text(self, text: str) -> list[Action]:
        return []

    def on_bytes(self, data: bytes) -> list[Action]:
        return []

    def on_idle(self) -> list[Action]:
        return []

    def on_tick(self, taken_ms: int) -> list[Action]:
        """Every ``tick_s`` while the engine has reported on all audio through ``taken_ms``."""
        return []

    # --- the session layer -----------------------------------------------------------------
    def on_session(self, session_id: str, created_at: float) -> list[Action]:
        self.session_id = session_id
        return []

    def on_refused(self, status: int, code: str, message: str) -> list[Action]:
        """The session could not be created (capacity 503, or a bad request 400)."""
        return [Close(1013 if status == 503 else 1008, message[:120])]

    def on_result(self, msg: dict[str, Any], *, is_final: bool) -> list[Action]:
        return []

    def flush_started(self) -> None:
        """Between feeding what was pending and flushing the engine: results from here on come
        from the flush."""

    def on_flushed(self) -> list[Action]:
        return []

    def on_finished(self) -> list[Action]:
        return [Close(1000)]

    def on_engine_error(self, message: str) -> list[Action]:
        return []

    def on_server_close(self, code: int, reason: str) -> list[Action]:
        """The session layer closes the connection (engine failure 1011, deletion 4404,
        shutdown 1001...)."""
        return [Close(code, reason)]

    def on_finalized_audio(self) -> list[Action]:
        """Audio arrived for a session finalized meanwhile (over HTTP): not transcribed."""
        return []
