"""AssemblyAI Universal-Streaming v3 (``GET /v3/ws``) over the shared sessions.

The ``assemblyai`` SDK's ``StreamingClient(StreamingClientOptions(api_key=KEY,
api_host="ws://HOST:PORT"))`` works unchanged (it connects to ``{api_host}/v3/ws?...``).

Wire choices, made as AssemblyAI's docs and SDK define them:
- Credentials: the ``Authorization`` header (the key itself, as the SDK sends it, or
  ``Bearer <key>``), or the ``token`` query parameter (browsers). Wrong or missing: accepted, then
  closed 4001 ``Not Authorized``.
- Query: ``sample_rate`` is required (8000, 16000, 24000, 44100 or 48000 here), ``encoding``
  ``pcm_s16le`` (the default) or ``pcm_mulaw``; ``format_turns`` ``true``/``false``;
  ``inactivity_timeout`` seconds (5-3600) closes 4031 ``Session idle for too long`` after that long
  without a message. Other parameters (``end_of_turn_confidence_threshold``, ``keyterms_prompt``,
  ``speech_model`` ...) are accepted and ignored. A bad one: accepted, ``Begin`` never sent, closed
  3006 ``Input validation error: ...`` naming it.
- ``Begin`` (``id`` is the session id, visible at ``GET /v1/sessions/{id}``, ``expires_at`` Unix
  seconds three hours on) once the session exists. At capacity: closed 3009 (too many concurrent
  sessions).
- Audio: binary frames of 50 to 1000 ms of audio each; outside that, closed 3007 ``Input Duration
  Violation`` (as AssemblyAI does). A text frame that is not one of the four messages, or not
  JSON: closed 3006.
- ``Turn``: one per engine segment, ``turn_order`` counting from 0 on this connection. While the
  segment is open (``end_of_turn: false``) ``transcript`` holds the finalized words, none yet (the
  engines finalize whole segments), and ``words`` the words heard so far with
  ``word_is_final: false``. The segment's final is ``end_of_turn: true`` with every word final;
  with ``format_turns=true`` a second ``Turn`` follows with ``turn_is_formatted: true`` and the
  transcript capitalized and ending in a full stop (the reference server's "formatting").
- ``ForceEndpoint`` flushes the engine: the open segment becomes an end-of-turn ``Turn`` now.
  ``KeepAlive`` only resets the inactivity timeout. ``UpdateConfiguration`` is recorded and takes
  ``format_turns``. ``Terminate``: the last turn, the shared finalize path, ``Termination``
  (``audio_duration_seconds``, ``session_duration_seconds``), close 1000. A client that just goes
  away ends the session too.
- Engine failure: closed 3005 (server error).

Reference-server extensions: ``speech_model`` (or ``model``) may name one of this server's engines
(``pocketsphinx``, ``scripted``); ``script`` gives the scripted engine its words.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.datastructures import Headers, QueryParams

from ..config import ServerConfig
from .adapter import Action, Adapter, Audio, Close, Control, Finish, Flush, Send
from .audio import AudioConverter, AudioFormat, AudioFormatError

MIN_CHUNK_MS, MAX_CHUNK_MS = 50, 1000
SESSION_LIMIT_S = 3 * 3600
_ENCODINGS = {"pcm_s16le": "pcm_s16le", "pcm_mulaw": "mulaw"}
_TRUE, _FALSE = ("true", "1"), ("false", "0")


class InvalidQuery(ValueError):
    pass


class AssemblyAIAdapter(Adapter):
    protocol = "assemblyai"
    open_at_connect = True

    def __init__(self, query: QueryParams, headers: Headers, config: ServerConfig) -> None:
        super().__init__(query, headers, config)
        self.converter: AudioConverter | None = None
        self.format_turns = False
        self.turns: dict[int, int] = {}  # segment id -> turn_order
        self.next_turn = 0
        self.audio_bytes = 0
        self.started = time.monotonic()

    def credential(self) -> str | None:
        header = self.headers.get("authorization", "").strip()
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return header or self.query.get("token") or None

    def unauthorized(self) -> list[Action]:
        return [Close(4001, "Not Authorized")]

    def on_connect(self) -> list[Action]:
        try:
            self._parse_query()
        except (InvalidQuery, AudioFormatError) as exc:
            return [Close(3006, f"Input validation error: {exc}")]
        return []

    def _parse_query(self) -> None:
        q = self.query
        raw_rate = q.get("sample_rate")
        if raw_rate is None or not raw_rate.isdigit():
            raise InvalidQuery(f"sample_rate must be a positive integer; got {raw_rate!r}")
        encoding = q.get("encoding", "pcm_s16le")
        if encoding not in _ENCODINGS:
            raise InvalidQuery(f"encoding {encoding!r} is not supported here; use pcm_s16le or pcm_mulaw")
        self.converter = AudioConverter(AudioFormat(_ENCODINGS[encoding], int(raw_rate)))
        self.format_turns = _flag(q.get("format_turns"), "format_turns")
        raw_idle = q.get("inactivity_timeout")
        if raw_idle is not None:
            if not raw_idle.isdigit() or not 5 <= int(raw_idle) <= 3600:
                raise InvalidQuery(f"inactivity_timeout must be 5 to 3600 seconds; got {raw_idle!r}")
            self.idle_timeout_s = float(raw_idle)

    def session_body(self) -> dict[str, Any]:
        return self.body(self.query.get("speech_model") or self.query.get("model"))

    def on_session(self, session_id: str, created_at: float) -> list[Action]:
        super().on_session(session_id, created_at)
        return [Send({"type": "Begin", "id": session_id, "expires_at": int(created_at) + SESSION_LIMIT_S})]

    def on_refused(self, status: int, code: str, message: str) -> list[Action]:
        if status == 503:
            return [Close(3009, "Too many concurrent sessions")]
        return [Close(3006, f"Input validation error: {message}")]

    # --- frames --------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> list[Action]:
        assert self.converter is not None
        ms = self.converter.format.duration_ms(len(data))
        if not MIN_CHUNK_MS <= ms <= MAX_CHUNK_MS:
            return [Close(3007, f"Input Duration Violation: {ms:.0f} ms. Expected between {MIN_CHUNK_MS} and "
                                f"{MAX_CHUNK_MS} ms")]
        self.audio_bytes += len(data)
        return [Audio(self.converter.convert(data))]

    def on_text(self, text: str) -> list[Action]:
        try:
            message = json.loads(text)
        except ValueError:
            return [Close(3006, "Input validation error: a text message must be JSON")]
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "KeepAlive":
            return [Control("KeepAlive")]
        if kind == "ForceEndpoint":
            return [Control("ForceEndpoint"), Flush()]
        if kind == "Terminate":
            tail = self.converter.flush() if self.converter else b""
            return [Control("Terminate"), Audio(tail), Finish()]
        if kind == "UpdateConfiguration":
            assert isinstance(message, dict)
            if "format_turns" in message:
                if not isinstance(message["format_turns"], bool):
                    return [Close(3006, "Input validation error: format_turns must be true or false")]
                self.format_turns = message["format_turns"]
            return [Control("UpdateConfiguration", {k: v for k, v in message.items() if k != "type"})]
        return [Close(3006, f"Input validation error: unknown message {str(kind)[:60]!r}; expected KeepAlive, "
                            "ForceEndpoint, UpdateConfiguration or Terminate")]

    def on_idle(self) -> list[Action]:
        return [Close(4031, "Session idle for too long")]

    # --- results -------------------------------------------------------------------------
    def on_result(self, msg: dict[str, Any], *, is_final: bool) -> list[Action]:
        seg = msg["segment_id"]
        if seg not in self.turns:
            self.turns[seg] = self.next_turn
            self.next_turn += 1
        order = self.turns[seg] if not is_final else self.turns.pop(seg)
        words = _words(msg, final=is_final)
        turn = {"type": "Turn", "turn_order": order, "turn_is_formatted": False, "end_of_turn": is_final,
                "transcript": msg["text"] if is_final else "", "end_of_turn_confidence": 1.0 if is_final else 0.0,
                "words": words}
        out: list[Action] = [Send(turn)]
        if is_final and self.format_turns:
            out.append(Send({**turn, "turn_is_formatted": True, "transcript": _formatted(msg["text"])}))
        return out

    def on_finished(self) -> list[Action]:
        audio_s = self.converter.format.duration_ms(self.audio_bytes) / 1000 if self.converter else 0.0
        return [Send({"type": "Termination", "audio_duration_seconds": int(audio_s),
                      "session_duration_seconds": int(time.monotonic() - self.started)}), Close(1000)]

    def on_server_close(self, code: int, reason: str) -> list[Action]:
        if code in (1000, 1001):
            return [Close(code, reason)]
        return [Close(3005, f"Server error: {reason}")]

    def on_finalized_audio(self) -> list[Action]:
        return [Close(3005, "Server error: the session was finalized")]


def _flag(raw: str | None, name: str) -> bool:
    if raw is None or raw == "":
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidQuery(f"{name} must be true or false; got {raw!r}")


def _words(msg: dict[str, Any], *, final: bool) -> list[dict[str, Any]]:
    words = msg.get("words") or []
    if words:
        return [{"start": w["start_ms"], "end": w["end_ms"], "text": w["word"], "confidence": w["confidence"],
                 "word_is_final": final} for w in words]
    # interim results carry text only: its words, spread over the segment so far
    texts = msg["text"].split()
    if not texts:
        return []
    span = max(msg["end_ms"] - msg["start_ms"], len(texts))
    step = span // len(texts)
    return [{"start": msg["start_ms"] + i * step, "end": msg["start_ms"] + (i + 1) * step, "text": t,
             "confidence": 0.0, "word_is_final": final} for i, t in enumerate(texts)]


def _formatted(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."
