"""The reference streaming protocol, v1 (PROTOCOL.md), as a sans-I/O codec.

Sessions are created over HTTP; the stream carries audio frames with an 8-byte little-endian
byte offset, and the server answers with ready / ack / partial / final / event / error. Decoding
is strict: this is the protocol the harness holds other backends against, so a message with a
missing field, a wrong type or an unknown ``type`` is a ProtocolError, never a silent default.
"""

from __future__ import annotations

import json
import struct
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from harness.protocols._fields import Fields, load_object
from harness.protocols.base import (
    ConnectRequest,
    HttpRequest,
    ProtocolError,
    SessionCreateError,
    SessionInfo,
    SessionParams,
    StreamTarget,
    check_audio,
    check_control_kind,
    error_message,
    retry_after_seconds,
)
from harness.protocols.events import Ack, Closed, Error, Event, Final, Partial, PipelineEvent, Ready, Word

OFFSET_HEADER = struct.Struct("<Q")  # 8-byte little-endian unsigned byte offset
ERROR_CODES = frozenset(
    {"bad_frame", "frame_too_large", "audio_gap", "bad_message", "session_closed", "overloaded", "internal"}
)


def pack_audio_frame(offset: int, pcm: bytes) -> bytes:
    return OFFSET_HEADER.pack(offset) + bytes(pcm)


def unpack_audio_frame(frame: bytes) -> tuple[int, bytes]:
    """Inverse of :func:`pack_audio_frame` (used by tests and test doubles)."""
    if len(frame) < OFFSET_HEADER.size:
        raise ProtocolError(f"audio frame of {len(frame)} bytes is shorter than the 8-byte offset header")
    (offset,) = OFFSET_HEADER.unpack_from(frame)
    return offset, bytes(frame[OFFSET_HEADER.size :])


class ReferenceCodec:
    """PROTOCOL.md v1."""

    name: ClassVar[str] = "reference"
    capabilities: ClassVar[frozenset[str]] = frozenset({
        "api_key", "session_api", "session_lookup", "http_finalize", "offsets", "replay", "segment_ids", "ready", "partials",
        "endpointing", "pipeline_events", "keepalive", "idle_timeout", "scripted_engine", "delete", "health", "stats", "v1_frames",
    })
    supports_resume: ClassVar[bool] = True
    has_offsets: ClassVar[bool] = True
    sends_ready: ClassVar[bool] = True
    finalize_control: ClassVar[str] = "finalize"
    http_finalize: ClassVar[bool] = True
    stream_path: ClassVar[str] = "/v1/stream"
    idle_close: ClassVar[tuple[int, str]] = (4408, "")  # after ready.idle_timeout_s without audio or keepalive

    # --- HTTP ---------------------------------------------------------------------------
    @staticmethod
    def _auth(target: StreamTarget) -> dict[str, str]:
        return {"Authorization": f"Bearer {target.api_key}"}

    def create_session_request(self, target: StreamTarget, params: SessionParams) -> HttpRequest:
        body: dict[str, Any] = {"engine": params.engine, "sample_rate": params.sample_rate, "metadata": dict(params.metadata)}
        if params.script is not None:
            body["script"] = params.script
        return HttpRequest("POST", "/v1/sessions", self._auth(target), body)

    def parse_session_created(
        self, status: int, body: Any, headers: dict[str, str] | None = None, params: SessionParams | None = None
    ) -> SessionInfo:
        """A 201 body becomes SessionInfo; any other status raises SessionCreateError carrying the
        server's message and Retry-After; a 201 with a malformed body is a ProtocolError."""
        if isinstance(body, (bytes, str)):
            try:
                body = json.loads(body) if body else {}
            except ValueError:
                if status == 201:
                    raise ProtocolError(f"POST /v1/sessions: 201 body is not JSON: {body!r:.120}") from None
        if status != 201:
            raise SessionCreateError(status, error_message(body), retry_after_seconds(headers))
        if not isinstance(body, dict):
            raise ProtocolError(f"POST /v1/sessions: 201 body must be a JSON object, got {body!r:.120}")
        f = Fields(body, "POST /v1/sessions 201", json.dumps(body)[:200])
        return SessionInfo(
            session_id=f.str("session_id"),
            token=f.str("token"),
            state=f.str("state"),
            stream_url=f.str("stream_url", None),
            params=params or SessionParams(),
            raw=body,
        )

    def local_session(self, params: SessionParams) -> SessionInfo:
        raise ValueError("the reference protocol creates sessions over HTTP; use create_session_request")

    def finalize_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest:
        return HttpRequest("POST", f"/v1/sessions/{quote(self._sid(session), safe='')}/finalize", self._auth(target))

    def get_session_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest:
        return HttpRequest("GET", f"/v1/sessions/{quote(self._sid(session), safe='')}", self._auth(target))

    def delete_session_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest:
        return HttpRequest("DELETE", f"/v1/sessions/{quote(self._sid(session), safe='')}", self._auth(target))

    @staticmethod
    def _sid(session: SessionInfo) -> str:
        if not session.session_id:
            raise ValueError("this request needs a session id; the session has none")
        return session.session_id

    # --- stream -------------------------------------------------------------------------
    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest:
        """``resume_offset`` is unused: the server names the resume point in ``ready``."""
        query: dict[str, Any] = {"session_id": self._sid(session)}
        if last_segment_id is not None and last_segment_id >= 0:
            query["last_segment_id"] = last_segment_id
        # The session token authorizes this one stream; fall back to the API key without one.
        credential = session.token or target.api_key
        return ConnectRequest(
            f"{target.ws_base}{self.stream_path}?{urlencode(query)}", {"Authorization": f"Bearer {credential}"}
        )

    def encode_audio(self, offset: int, pcm: bytes) -> bytes:
        check_audio(offset, pcm)
        return pack_audio_frame(offset, pcm)

    def encode_control(self, kind: str) -> str | None:
        """``close_stream`` has no message in v1: a client ends a stream with a close frame."""
        check_control_kind(kind)
        if kind == "close_stream":
            return None
        return json.dumps({"type": kind})

    def decode(self, frame: bytes | str) -> list[Event]:
        data = load_object(frame, "reference")
        kind = data.get("type")
        decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
        if decoder is None:
            raise ProtocolError(
                f"reference: unknown message type {kind!r}; expected one of {sorted(_DECODERS)}: {frame!r:.120}"
            )
        return [decoder(Fields(data, f"reference {kind}", frame))]

    def closed(self, code: int, reason: str = "") -> Closed:
        return Closed(code, reason)

    def finals_of_record(self, body: Any) -> list[Final]:
        """The finals of ``GET /v1/sessions/{id}`` (where a final lost after finalize is read
        back); ProtocolError if the body has no well-formed ``finals`` list."""
        if not isinstance(body, dict) or not isinstance(body.get("finals"), list):
            raise ProtocolError(f"reference session record: no 'finals' list in {body!r:.120}")
        return [_final(Fields(f if isinstance(f, dict) else {}, "reference session record final", repr(f)))
                for f in body["finals"]]

    def close_events(self, code: int, reason: str = "") -> list[Event]:
        return [self.closed(code, reason)]


# --- message decoders -------------------------------------------------------------------


def _ready(f: Fields) -> Ready:
    return Ready(
        session_id=f.str("session_id"),
        committed_offset=f.int("committed_offset"),
        sample_rate=f.int("sample_rate", 16000, minimum=1),
        heartbeat_s=f.number("heartbeat_s", None, minimum=0),
        idle_timeout_s=f.number("idle_timeout_s", None, minimum=0),
        max_frame_bytes=f.int("max_frame_bytes", None, minimum=1),
    )


def _ack(f: Fields) -> Ack:
    return Ack(received_offset=f.int("received_offset"), durable_offset=f.int("durable_offset"))


def _partial(f: Fields) -> Partial:
    return Partial(segment_id=f.int("segment_id"), text=f.str("text"), start_ms=f.ms("start_ms"), end_ms=f.ms("end_ms"))


def _final(f: Fields) -> Final:
    words = []
    for i, raw in enumerate(f.list("words", [])):
        w = f.sub(f"words[{i}]", raw, f"words[{i}]")
        words.append(Word(w.str("word"), w.ms("start_ms"), w.ms("end_ms"), float(w.number("confidence", 1.0))))
    return Final(
        segment_id=f.int("segment_id"),
        text=f.str("text"),
        start_ms=f.ms("start_ms"),
        end_ms=f.ms("end_ms"),
        words=tuple(words),
    )


def _event(f: Fields) -> PipelineEvent:
    return PipelineEvent(name=f.str("name"), at=f.get("at", None), data=f.dict("data", {}) or {})


def _error(f: Fields) -> Error:
    details = {k: v for k, v in f.data.items() if k not in ("type", "code", "message", "retryable")}
    if "expected_offset" in details:
        f.int("expected_offset")  # the field a client acts on must be well-formed
    return Error(code=f.str("code"), message=f.str("message", ""), retryable=f.bool("retryable", False), details=details)


_DECODERS = {"ready": _ready, "ack": _ack, "partial": _partial, "final": _final, "event": _event, "error": _error}
