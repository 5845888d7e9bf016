"""AssemblyAI Universal-Streaming v3 (``/v3/ws``) as a sans-I/O codec.

No session step: each connection is a session whose id comes in ``Begin``. Audio is raw PCM
(16 kHz s16le here) in binary frames of 50 to 1000 ms each (AssemblyAI closes 3007 outside that):
the drivers' 100 ms chunks fit, and a shorter chunk (the end of a plan's audio) is padded with
silence to 50 ms here, which moves no word and adds no text. No offsets, no acks, no resume, no segment ids: finals are numbered 0, 1,
2 ... here, in order, across reconnects, and times are put on the session's audio clock with the
audio sent before the connection (``connect_request(resume_offset=...)``).

- ``Turn`` with ``end_of_turn`` and not ``turn_is_formatted``: a Final (its words and times in
  ms); the formatted copy that ``format_turns=true`` adds is kept as Info ``formatted_turn``.
  Any other ``Turn`` is a Partial of the open segment (its words so far).
- ``Begin``, ``Termination``, ``SpeechStarted``: Info. ``Error`` (or ``{"error": ...}``): Error.
- Controls: keepalive -> ``KeepAlive``, finalize -> ``ForceEndpoint`` (the open turn ends now,
  the stream goes on), close_stream -> ``Terminate`` (the server answers ``Termination`` and
  closes 1000).
- A close with one of AssemblyAI's codes (3005 server error, 3006 input validation, 3007 chunk
  duration, 3008 session expired, 3009 too many sessions, 4001 not authorized, 4031 idle...) is an
  Error as well as the Closed.

Reference-server extensions, sent only when a script is asked for: ``speech_model`` names the
engine and ``script`` gives the scripted engine its words.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar
from urllib.parse import urlencode

from harness.protocols._fields import Fields, load_object
from harness.protocols.base import (
    ConnectRequest,
    ProtocolError,
    SessionInfo,
    StreamTarget,
    check_audio,
    check_control_kind,
)
from harness.protocols.stream_only import StreamOnlyCodec
from harness.protocols.events import Closed, Error, Event, Final, Info, Partial, Word

_CONTROL_TYPES = {"keepalive": "KeepAlive", "finalize": "ForceEndpoint", "close_stream": "Terminate"}
CLOSE_CODES = {
    3005: "server error", 3006: "input validation error", 3007: "audio chunk duration violation",
    3008: "session expired", 3009: "too many concurrent sessions", 4001: "not authorized",
    4002: "insufficient funds", 4029: "audio sent too fast", 4031: "session idle for too long",
}
_RETRYABLE = {3005, 3009, 1011, 1013}
MIN_CHUNK_BYTES = 50 * 32  # 50 ms of 16 kHz s16le


class AssemblyAICodec(StreamOnlyCodec):
    name: ClassVar[str] = "assemblyai"
    # Streaming only; the reference server's HTTP extras (GET /v1/sessions/{Begin.id}, /health)
    # are added with --capabilities.
    capabilities: ClassVar[frozenset[str]] = frozenset({"api_key", "keepalive", "partials", "endpointing"})
    stream_path: ClassVar[str] = "/v3/ws"

    def __init__(self) -> None:
        self.next_segment_id = 0
        self.time_base_ms = 0.0
        self.learned_session_id: str | None = None
        self.session_ids: list[str] = []  # one per connection (Begin.id)

    # --- stream ------------------------------------------------------------------------------
    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest:
        p = session.params
        self.time_base_ms = self.time_base_ms_for(resume_offset, p.sample_rate)
        query: dict[str, Any] = {"sample_rate": p.sample_rate, "encoding": "pcm_s16le", "format_turns": "false"}
        if p.script:
            query["speech_model"] = p.engine
            query["script"] = p.script
        return ConnectRequest(f"{target.ws_base}{self.stream_path}?{urlencode(query)}",
                              {"Authorization": target.api_key})

    def encode_audio(self, offset: int, pcm: bytes) -> bytes:
        check_audio(offset, pcm)
        return bytes(pcm) + b"\x00" * max(0, MIN_CHUNK_BYTES - len(pcm))

    def encode_control(self, kind: str) -> str:
        check_control_kind(kind)
        return json.dumps({"type": _CONTROL_TYPES[kind]})

    def decode(self, frame: bytes | str) -> list[Event]:
        data = load_object(frame, "assemblyai")
        kind = data.get("type")
        f = Fields(data, f"assemblyai {kind}", frame)
        if kind == "Turn":
            return self._turn(f)
        if kind == "Begin":
            session_id = f.str("id")
            self.learned_session_id = self.learned_session_id or session_id
            if session_id not in self.session_ids:
                self.session_ids.append(session_id)
            return [Info("Begin", _rest(data))]
        if kind in ("Termination", "SpeechStarted"):
            return [Info(kind, _rest(data))]
        if kind == "Error" or (kind is None and "error" in data):
            code = data.get("error_code")
            return [Error(code=str(code) if code is not None else "error", message=str(data.get("error", "")),
                          retryable=code in _RETRYABLE, details=_rest(data))]
        raise ProtocolError(f"assemblyai: unknown message type {kind!r}; expected Begin, Turn, Termination, "
                            f"SpeechStarted or Error: {frame!r:.120}")

    def closed(self, code: int, reason: str = "") -> Closed:
        return Closed(code, reason)

    def close_events(self, code: int, reason: str = "") -> list[Event]:
        events: list[Event] = []
        if code in CLOSE_CODES:
            events.append(Error(code=str(code), message=reason or CLOSE_CODES[code], retryable=code in _RETRYABLE,
                                details={"close_code": code}))
        events.append(self.closed(code, reason))
        return events

    # --- internals ---------------------------------------------------------------------------
    def _ms(self, value_ms: float) -> int:
        out = self.time_base_ms + value_ms
        if not math.isfinite(out):
            raise ProtocolError(f"assemblyai: a time of {value_ms!r} ms is not a number")
        return round(out)

    def _turn(self, f: Fields) -> list[Event]:
        end_of_turn = f.bool("end_of_turn")
        formatted = f.bool("turn_is_formatted", False)
        transcript = f.str("transcript", "")
        words = []
        for i, raw in enumerate(f.list("words", [])):
            w = f.sub(f"words[{i}]", raw, f"words[{i}]")
            words.append(Word(w.str("text"), self._ms(w.number("start", minimum=0)),
                              self._ms(w.number("end", minimum=0)), float(w.number("confidence", 1.0))))
        start = words[0].start_ms if words else round(self.time_base_ms)
        end = words[-1].end_ms if words else start
        if end_of_turn and formatted:
            return [Info("formatted_turn", {"turn_order": f.get("turn_order", None), "transcript": transcript})]
        segment_id = self.next_segment_id
        if not end_of_turn:
            return [Partial(segment_id, " ".join(w.word for w in words), start, end)]
        self.next_segment_id += 1
        return [Final(segment_id, transcript, start, end, tuple(words))]


def _rest(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "type"}
