"""OpenAI Realtime transcription (``GET /v1/realtime?intent=transcription``) over the shared sessions.

What ``AsyncOpenAI(websocket_base_url="ws://HOST:PORT/v1").realtime.connect(extra_query={"intent":
"transcription"})`` (openai 2.x/3.x, the GA Realtime API) sends works unchanged.

Wire choices, made as the installed SDK's types define them:
- Event names are the GA ones: the server says ``session.created`` first and answers
  ``session.update`` with ``session.updated``, the session object being a transcription session
  (``"type": "transcription"``, ``audio.input.format``/``transcription``/``turn_detection``). The
  beta names (``transcription_session.update`` with flat ``input_audio_format``,
  ``input_audio_transcription``, ``turn_detection``) are also taken and answered with
  ``transcription_session.updated``.
- Credentials: ``Authorization: Bearer <key>``, or the browser subprotocol
  ``openai-insecure-api-key.<key>`` (answered with ``realtime``). Wrong or missing: HTTP 401 at the
  handshake with OpenAI's error body (``invalid_api_key``). No ``intent=transcription``: HTTP 400
  (only transcription sessions are served here).
- Audio: ``input_audio_buffer.append`` with base64 audio in the session's format: ``audio/pcm``
  at 24 kHz (the default; beta ``pcm16``), ``audio/pcmu`` or ``audio/pcma`` at 8 kHz (beta
  ``g711_ulaw``/``g711_alaw``), resampled to the engine's 16 kHz. The format cannot change once
  audio has come (an ``error``, the session goes on).
- ``turn_detection`` ``server_vad`` (the default) or ``semantic_vad``: audio goes to the engine as it
  comes; a segment the engine opens is ``input_audio_buffer.speech_started``, its final is
  ``speech_stopped``, ``committed``, one ``conversation.item.input_audio_transcription.delta``
  with the whole text, then ``.completed``. ``commit`` forces the open segment out (the engine is
  flushed); ``clear`` answers ``input_audio_buffer.cleared`` but cannot take back audio the engine
  has already heard. ``turn_detection: null``: audio waits in the input buffer (at most 15 MiB of
  16 kHz audio) until ``commit``, which gives it to the engine and flushes it: every final of that
  audio is one item's transcript (``completed`` with an empty transcript if there were no words);
  ``clear`` drops the buffer, which the engine never hears.
- An empty commit (no audio since the last commit or turn) is an ``error`` with code
  ``input_audio_buffer_commit_empty``, as OpenAI answers. Bad JSON, an unknown event type, bad
  base64, a binary frame and conversation/response events are ``error`` events with
  ``invalid_request_error`` and the session goes on. An engine failure is ``.failed`` for the open
  item, then close 1011.
- The protocol has no end message: a client that closes the socket ends the session (the shared
  finalize path runs, its pipeline goes on). Commit first to get the last words.

Reference-server extensions: ``transcription.model`` (or the ``model`` query parameter) may name
one of this server's engines (``pocketsphinx``, ``scripted``) while no audio has come; the
``script`` query parameter gives the scripted engine its words.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from typing import Any

from starlette.datastructures import Headers, QueryParams

from ..config import ServerConfig
from .adapter import Action, Adapter, Audio, Close, Control, Deny, Flush, Open, Received, Send
from .audio import ENGINE_RATE, AudioConverter, AudioFormat

INPUT_BUFFER_MAX_BYTES = 15 * 1024 * 1024
_FORMATS = {  # GA type / beta name -> (our encoding, sample rate)
    "audio/pcm": ("pcm_s16le", 24000), "pcm16": ("pcm_s16le", 24000),
    "audio/pcmu": ("mulaw", 8000), "g711_ulaw": ("mulaw", 8000),
    "audio/pcma": ("alaw", 8000), "g711_alaw": ("alaw", 8000),
}
_GA_FORMAT = {"pcm_s16le": {"type": "audio/pcm", "rate": 24000}, "mulaw": {"type": "audio/pcmu"},
              "alaw": {"type": "audio/pcma"}}
_BETA_FORMAT = {"pcm_s16le": "pcm16", "mulaw": "g711_ulaw", "alaw": "g711_alaw"}
DEFAULT_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


class OpenAIRealtimeAdapter(Adapter):
    protocol = "openai-realtime"

    def __init__(self, query: QueryParams, headers: Headers, config: ServerConfig) -> None:
        super().__init__(query, headers, config)
        self.model = query.get("model") or "gpt-4o-transcribe"
        self.language: str | None = None
        self.encoding = "pcm_s16le"
        self.turn_detection: dict[str, Any] | None = dict(DEFAULT_VAD)
        self.converter = AudioConverter(AudioFormat("pcm_s16le", 24000))
        self.audio_started = False
        self._events = 0
        self._items = 0
        self.buffer = bytearray()  # manual mode: 16 kHz audio waiting for a commit
        self.uncommitted_ms = 0.0  # VAD mode: audio since the last turn ended
        self.segment_items: dict[int, str] = {}  # segment id -> item id
        self.last_item: str | None = None
        self.commit_item: str | None = None  # manual mode: the commit being transcribed
        self.commit_texts: list[str] = []
        self.commit_ms = 0.0
        self.commit_event: str | None = None  # VAD mode: a client commit waiting for its flush

    # --- handshake -----------------------------------------------------------------------
    def credential(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        for proto in self.headers.get("sec-websocket-protocol", "").split(","):
            proto = proto.strip()
            if proto.startswith("openai-insecure-api-key."):
                self.subprotocol = "realtime"
                return proto[len("openai-insecure-api-key."):]
        return None

    def unauthorized(self) -> list[Action]:
        return [Deny(401, {"error": _error_body("invalid_api_key", "Incorrect API key provided: send "
                                                "Authorization: Bearer <API key>.")})]

    def on_connect(self) -> list[Action]:
        if self.query.get("intent") != "transcription":
            return [Deny(400, {"error": _error_body(
                "invalid_intent", "this server serves transcription sessions only: connect with "
                                  "?intent=transcription", param="intent")})]
        return [Send(self._event("session.created", session=self._session()))]

    def session_body(self) -> dict[str, Any]:
        return self.body(self.model, vendor_model=self.model)

    # --- events --------------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._events += 1
        return {"type": kind, "event_id": f"event_{self._events:06d}", **fields}

    def _error(self, code: str, message: str, *, param: str | None = None,
               client_event: Any = None) -> Send:
        return Send(self._event("error", error=_error_body(code, message, param=param,
                                                           event_id=client_event if isinstance(client_event, str)
                                                           else None)))

    def _item(self) -> str:
        self._items += 1
        return f"item_{self._items:06d}"

    def _session(self) -> dict[str, Any]:
        transcription: dict[str, Any] = {"model": self.model}
        if self.language:
            transcription["language"] = self.language
        return {"type": "transcription", "object": "realtime.transcription_session",
                "audio": {"input": {"format": dict(_GA_FORMAT[self.encoding]), "noise_reduction": None,
                                    "transcription": transcription,
                                    "turn_detection": copy.deepcopy(self.turn_detection)}},
                "include": []}

    def _beta_session(self) -> dict[str, Any]:
        return {"object": "realtime.transcription_session", "input_audio_format": _BETA_FORMAT[self.encoding],
                "input_audio_transcription": {"model": self.model, "language": self.language},
                "turn_detection": copy.deepcopy(self.turn_detection), "input_audio_noise_reduction": None,
                "include": []}

    def on_bytes(self, data: bytes) -> list[Action]:
        return [self._error("invalid_value", "binary frames are not part of the Realtime API: send audio as "
                                             "input_audio_buffer.append with base64 audio", param="type")]

    def on_text(self, text: str) -> list[Action]:
        try:
            event = json.loads(text)
        except ValueError as exc:
            return [self._error("invalid_json", f"the message is not valid JSON: {exc}")]
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return [self._error("invalid_value", "an event must be a JSON object with a string 'type'",
                                param="type")]
        kind, client_event = event["type"], event.get("event_id")
        if kind == "input_audio_buffer.append":
            return self._append(event, client_event)
        if kind == "input_audio_buffer.commit":
            return [Control("commit"), *self._commit(client_event)]
        if kind == "input_audio_buffer.clear":
            self.buffer.clear()
            self.uncommitted_ms = 0.0
            return [Control("clear"), Send(self._event("input_audio_buffer.cleared"))]
        if kind in ("session.update", "transcription_session.update"):
            return [Control(kind), *self._update(event, beta=kind.startswith("transcription_session"))]
        return [self._error("invalid_value", f"Invalid value: {kind[:80]!r}. This transcription session takes "
                            "session.update, input_audio_buffer.append, input_audio_buffer.commit and "
                            "input_audio_buffer.clear", param="type", client_event=client_event)]

    def _update(self, event: dict[str, Any], *, beta: bool) -> list[Action]:
        client_event = event.get("event_id")
        session = event.get("session")
        if not isinstance(session, dict):
            return [self._error("invalid_value", "session must be an object", param="session",
                                client_event=client_event)]
        if beta:
            fmt_name = session.get("input_audio_format")
            transcription = session.get("input_audio_transcription")
            has_td, td = "turn_detection" in session, session.get("turn_detection")
            fmt_param = "session.input_audio_format"
        else:
            if session.get("type", "transcription") != "transcription":
                return [self._error("invalid_value", "session.type must be 'transcription' on an "
                                    "intent=transcription connection", param="session.type",
                                    client_event=client_event)]
            audio_in = ((session.get("audio") or {}).get("input") or {}) if isinstance(session.get("audio"), dict) \
                else {}
            if not isinstance(audio_in, dict):
                audio_in = {}
            fmt = audio_in.get("format")
            fmt_name = fmt.get("type") if isinstance(fmt, dict) else fmt
            if isinstance(fmt, dict) and fmt.get("type") == "audio/pcm" and fmt.get("rate", 24000) != 24000:
                return [self._error("invalid_value", f"audio/pcm must be 24000 Hz; got {fmt.get('rate')!r}",
                                    param="session.audio.input.format.rate", client_event=client_event)]
            transcription = audio_in.get("transcription")
            has_td, td = "turn_detection" in audio_in, audio_in.get("turn_detection")
            fmt_param = "session.audio.input.format"
        if fmt_name is not None:
            if fmt_name not in _FORMATS:
                return [self._error("invalid_value", f"Invalid audio format {fmt_name!r}: use audio/pcm (24 kHz), "
                                    "audio/pcmu or audio/pcma", param=fmt_param, client_event=client_event)]
            encoding, rate = _FORMATS[fmt_name]
            if encoding != self.encoding:
                if self.audio_started:
                    return [self._error("invalid_value", "the audio format cannot change once audio has been "
                                        "appended", param=fmt_param, client_event=client_event)]
                self.encoding = encoding
                self.converter = AudioConverter(AudioFormat(encoding, rate))
        if has_td:
            if td is not None and (not isinstance(td, dict) or td.get("type") not in ("server_vad", "semantic_vad")):
                return [self._error("invalid_value", "turn_detection must be null or have type server_vad or "
                                    "semantic_vad", param="turn_detection", client_event=client_event)]
            self.turn_detection = None if td is None else {**DEFAULT_VAD, **td} if td.get("type") == "server_vad" \
                else dict(td)
        if isinstance(transcription, dict):
            if isinstance(transcription.get("model"), str) and not self.audio_started:
                self.model = transcription["model"]
            if isinstance(transcription.get("language"), str):
                self.language = transcription["language"]
        if beta:
            return [Send(self._event("transcription_session.updated", session=self._beta_session()))]
        return [Send(self._event("session.updated", session=self._session()))]

    def _append(self, event: dict[str, Any], client_event: Any) -> list[Action]:
        audio = event.get("audio")
        if not isinstance(audio, str):
            return [self._error("invalid_value", "input_audio_buffer.append needs 'audio': base64-encoded audio",
                                param="audio", client_event=client_event)]
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            return [self._error("invalid_value", "audio is not valid base64", param="audio",
                                client_event=client_event)]
        self.audio_started = True
        pcm = self.converter.convert(raw)
        actions: list[Action] = [Received(len(raw))]
        if self.turn_detection is None:
            if len(self.buffer) + len(pcm) > INPUT_BUFFER_MAX_BYTES:
                return [*actions, self._error("input_audio_buffer_full", "the input audio buffer is full (15 MiB): "
                                              "commit or clear it", param="audio", client_event=client_event)]
            self.buffer += pcm
            return actions
        self.uncommitted_ms += len(pcm) / (2 * ENGINE_RATE / 1000)
        return [*actions, Open(), Audio(pcm)]

    def _commit(self, client_event: Any) -> list[Action]:
        if self.turn_detection is None:
            if not self.buffer:
                return [self._empty_commit(client_event)]
            self.buffer += self.converter.flush()  # the commit ends a stretch: the resampler's tail too
            pcm, self.buffer = bytes(self.buffer), bytearray()
            self.commit_item, self.commit_texts = self._item(), []
            self.commit_ms = len(pcm) / (2 * ENGINE_RATE / 1000)
            return [Audio(pcm), Flush()]
        if self.uncommitted_ms <= 0:
            return [self._empty_commit(client_event)]
        self.commit_event = client_event if isinstance(client_event, str) else ""
        return [Flush()]

    def _empty_commit(self, client_event: Any) -> Send:
        return self._error("input_audio_buffer_commit_empty", "Error committing input audio buffer: buffer too "
                           "small. Expected at least 100ms of audio, but buffer only has 0.00ms of audio.",
                           client_event=client_event)

    # --- results -------------------------------------------------------------------------
    def on_result(self, msg: dict[str, Any], *, is_final: bool) -> list[Action]:
        if self.commit_item is not None:  # manual mode: the commit's words, sent once it is flushed
            if is_final:
                self.commit_texts.append(msg["text"])
            return []
        if self.turn_detection is None:
            return []  # cannot happen: the engine only hears committed audio
        seg = msg["segment_id"]
        actions: list[Action] = []
        if seg not in self.segment_items:
            self.segment_items[seg] = self._item()
            actions.append(Send(self._event("input_audio_buffer.speech_started", audio_start_ms=msg["start_ms"],
                                            item_id=self.segment_items[seg])))
        if not is_final:
            return actions
        item = self.segment_items.pop(seg)
        actions.append(Send(self._event("input_audio_buffer.speech_stopped", audio_end_ms=msg["end_ms"],
                                        item_id=item)))
        duration_s = (msg["end_ms"] - msg["start_ms"]) / 1000
        self.uncommitted_ms = 0.0
        return actions + self._transcript(item, msg["text"], duration_s)

    def _transcript(self, item: str, text: str, duration_s: float) -> list[Action]:
        previous, self.last_item = self.last_item, item
        out: list[Action] = [Send(self._event("input_audio_buffer.committed", item_id=item, previous_item_id=previous))]
        if text:
            out.append(Send(self._event("conversation.item.input_audio_transcription.delta", item_id=item,
                                        content_index=0, delta=text)))
        out.append(Send(self._event("conversation.item.input_audio_transcription.completed", item_id=item,
                                    content_index=0, transcript=text,
                                    usage={"type": "duration", "seconds": round(duration_s, 3)})))
        return out

    def on_flushed(self) -> list[Action]:
        if self.commit_item is not None:
            item, self.commit_item = self.commit_item, None
            return self._transcript(item, " ".join(t for t in self.commit_texts if t), self.commit_ms / 1000)
        self.commit_event = None
        self.uncommitted_ms = 0.0
        return []

    def on_engine_error(self, message: str) -> list[Action]:
        item = self.commit_item or next(iter(self.segment_items.values()), None) or self._item()
        return [Send(self._event("conversation.item.input_audio_transcription.failed", item_id=item, content_index=0,
                                 error={"type": "server_error", "code": "transcription_failed", "message": message,
                                        "param": None}))]

    def on_refused(self, status: int, code: str, message: str) -> list[Action]:
        if status == 503:
            return [self._error("session_limit", f"{message}; try again later"), Close(1013, "at capacity")]
        return [self._error("invalid_value", message, param="model"), Close(1008, "session refused")]

    def on_finalized_audio(self) -> list[Action]:
        return [self._error("session_closed", "the session was finalized: audio from here on is not transcribed")]

    def on_finished(self) -> list[Action]:
        return [Close(1000)]


def _error_body(code: str, message: str, *, param: str | None = None, event_id: str | None = None,
                kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": kind, "code": code, "message": message, "param": param, "event_id": event_id}
