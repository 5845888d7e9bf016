"""Speechmatics real-time (``GET /v2``) over the shared sessions.

The ``speechmatics-rt`` SDK's ``AsyncClient(api_key=KEY, url="ws://HOST:PORT/v2")`` works
unchanged (``start_session``/``send_audio``/``stop_session`` and ``transcribe``).

Wire choices, made as Speechmatics' RT API reference and the SDK define them:
- Credentials: ``Authorization: Bearer <key>`` (what the SDK sends), or the ``jwt`` query
  parameter. Wrong or missing: accepted, ``Error{type: not_authorised}``, closed 1008.
- ``StartRecognition`` first: ``audio_format`` must be ``{"type": "raw", "encoding":
  pcm_s16le | pcm_f32le | mulaw, "sample_rate": 8000 | 16000 | 24000 | 44100 | 48000}`` (resampled
  to the engine's 16 kHz); ``type: file`` (containers) is refused with ``invalid_audio_type``.
  ``transcription_config.language`` defaults to ``en``; ``enable_partials`` sends
  ``AddPartialTranscript``; ``conversation_config`` (any ``end_of_utterance_silence_trigger``)
  turns ``EndOfUtterance`` on. The session is created then, and ``RecognitionStarted`` carries its
  id (visible at ``GET /v1/sessions/{id}``). At capacity: ``Error{type: quota_exceeded}``.
- Audio: each binary frame is acknowledged with ``AudioAdded{seq_no}``, counting from 1, once the
  session has taken it (so a client that waits for acks is paced by the engine, as with
  Speechmatics). Audio before ``StartRecognition`` is a ``protocol_error``.
- Results: ``AddTranscript`` per engine final and ``AddPartialTranscript`` per interim result,
  format 2.1: ``metadata`` with ``start_time``, ``end_time`` (seconds) and ``transcript``,
  ``results`` with one ``word`` per word (``alternatives[0]`` with ``content``, ``confidence``,
  ``language``). Interim results carry text only: their words are spread over the segment.
- ``EndOfUtterance`` (when on) after each final the engine ended itself, and after
  ``ForceEndOfUtterance`` (which flushes the engine: the open segment becomes a final now).
- ``EndOfStream{last_seq_no}``: the last finals, the shared finalize path, ``EndOfTranscript``,
  close 1000. ``SetRecognitionConfig`` may turn partials on or off. A client that just goes away
  ends the session too.
- Errors are ``Error{message, type, reason}`` and then the connection closes (1008 for the client's
  errors, 1011 for an engine failure): ``invalid_message`` (not JSON, an unknown message),
  ``protocol_error`` (order), ``invalid_audio_type``, ``invalid_config``.

Reference-server extensions: ``transcription_config.model`` (or the ``model`` query parameter) may
name one of this server's engines (``pocketsphinx``, ``scripted``); the ``script`` query parameter
gives the scripted engine its words.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers, QueryParams

from ..config import ServerConfig
from .adapter import Action, Adapter, Audio, Close, Control, Finish, Flush, Open, Send
from .audio import AudioConverter, AudioFormat, AudioFormatError

_ENCODINGS = {"pcm_s16le": "pcm_s16le", "pcm_f32le": "pcm_f32le", "mulaw": "mulaw"}


class SpeechmaticsAdapter(Adapter):
    protocol = "speechmatics"

    def __init__(self, query: QueryParams, headers: Headers, config: ServerConfig) -> None:
        super().__init__(query, headers, config)
        self.converter: AudioConverter | None = None
        self.language = "en"
        self.partials = False
        self.end_of_utterance = False
        self.model: str | None = query.get("model")
        self.seq_no = 0
        self.ending = False
        self.flushing = False
        self.last_end = 0.0  # seconds: the end of the latest result

    def credential(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return self.query.get("jwt") or None

    def unauthorized(self) -> list[Action]:
        return self._fatal("not_authorised", "Authentication failed: send Authorization: Bearer <API key>")

    def _fatal(self, kind: str, reason: str, code: int = 1008) -> list[Action]:
        return [Send({"message": "Error", "type": kind, "reason": reason}), Close(code, kind)]

    def session_body(self) -> dict[str, Any]:
        return self.body(self.model, language=self.language)

    # --- frames --------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> list[Action]:
        if self.converter is None:
            return self._fatal("protocol_error", "audio received before StartRecognition")
        if self.ending:
            return self._fatal("protocol_error", "audio received after EndOfStream")
        self.seq_no += 1
        return [Audio(self.converter.convert(data)), Send({"message": "AudioAdded", "seq_no": self.seq_no})]

    def on_text(self, text: str) -> list[Action]:
        try:
            message = json.loads(text)
        except ValueError:
            return self._fatal("invalid_message", "a text message must be JSON")
        kind = message.get("message") if isinstance(message, dict) else None
        if kind == "StartRecognition":
            assert isinstance(message, dict)
            if self.converter is not None:
                return self._fatal("protocol_error", "StartRecognition received twice")
            return self._start(message)
        if self.converter is None:
            return self._fatal("protocol_error", f"{str(kind)[:60]!r} received before StartRecognition")
        if kind == "EndOfStream":
            assert isinstance(message, dict)
            self.ending = True
            return [Control("EndOfStream", {"last_seq_no": message.get("last_seq_no"), "seq_no": self.seq_no}),
                    Audio(self.converter.flush()), Finish()]
        if kind == "ForceEndOfUtterance":
            return [Control("ForceEndOfUtterance"), Flush()]
        if kind == "SetRecognitionConfig":
            assert isinstance(message, dict)
            config = message.get("transcription_config")
            if isinstance(config, dict) and isinstance(config.get("enable_partials"), bool):
                self.partials = config["enable_partials"]
            return [Control("SetRecognitionConfig")]
        return self._fatal("invalid_message", f"unknown message {str(kind)[:60]!r}; expected StartRecognition, "
                                              "EndOfStream, ForceEndOfUtterance or SetRecognitionConfig")

    def _start(self, message: dict[str, Any]) -> list[Action]:
        fmt = message.get("audio_format")
        if not isinstance(fmt, dict) or fmt.get("type") != "raw":
            kind = fmt.get("type") if isinstance(fmt, dict) else None
            return self._fatal("invalid_audio_type", f"audio_format type {kind!r} is not supported here: send "
                                                     "raw audio (type raw with encoding and sample_rate)")
        encoding = fmt.get("encoding")
        if encoding not in _ENCODINGS:
            return self._fatal("invalid_audio_type", f"encoding {encoding!r} is not supported; use pcm_s16le, "
                                                     "pcm_f32le or mulaw")
        try:
            self.converter = AudioConverter(AudioFormat(_ENCODINGS[encoding], fmt.get("sample_rate")))
        except AudioFormatError as exc:
            return self._fatal("invalid_audio_type", str(exc))
        config = message.get("transcription_config", {})
        if not isinstance(config, dict):
            self.converter = None
            return self._fatal("invalid_config", "transcription_config must be an object")
        language = config.get("language", "en")
        if not isinstance(language, str) or not language:
            self.converter = None
            return self._fatal("invalid_config", f"transcription_config.language must be a language code; "
                                                 f"got {language!r}")
        self.language = language
        self.partials = config.get("enable_partials") is True
        self.end_of_utterance = isinstance(config.get("conversation_config"), dict)
        if isinstance(config.get("model"), str):
            self.model = config["model"]
        return [Control("StartRecognition"), Open()]

    def on_session(self, session_id: str, created_at: float) -> list[Action]:
        super().on_session(session_id, created_at)
        return [Send({"message": "RecognitionStarted", "id": session_id, "language_pack_info": {
            "adapted": False, "itn": False, "language_description": self.language, "word_delimiter": " ",
            "writing_direction": "left-to-right"}})]

    def on_refused(self, status: int, code: str, message: str) -> list[Action]:
        if status == 503:
            return self._fatal("quota_exceeded", message, 1013)
        return self._fatal("invalid_config", message)

    # --- results -------------------------------------------------------------------------
    def flush_started(self) -> None:
        self.flushing = True

    def on_flushed(self) -> list[Action]:
        self.flushing = False
        if not self.end_of_utterance:
            return []
        return [self._eou(self.last_end)]

    def _eou(self, end_s: float) -> Send:
        return Send({"message": "EndOfUtterance", "format": "2.1", "metadata": {"start_time": end_s,
                                                                                "end_time": end_s}})

    def on_result(self, msg: dict[str, Any], *, is_final: bool) -> list[Action]:
        if not is_final and not self.partials:
            return []
        start, end = msg["start_ms"] / 1000, msg["end_ms"] / 1000
        self.last_end = max(self.last_end, end)
        results = [{"type": "word", "start_time": w["start_ms"] / 1000, "end_time": w["end_ms"] / 1000,
                    "alternatives": [{"content": w["word"], "confidence": w["confidence"],
                                      "language": self.language}]} for w in _words(msg)]
        out: list[Action] = [Send({
            "message": "AddTranscript" if is_final else "AddPartialTranscript", "format": "2.1",
            "metadata": {"start_time": start, "end_time": end, "transcript": msg["text"] + " "},
            "results": results})]
        if is_final and self.end_of_utterance and not self.flushing:
            out.append(self._eou(end))
        return out

    def on_finished(self) -> list[Action]:
        return [Send({"message": "EndOfTranscript"}), Close(1000)]

    def on_engine_error(self, message: str) -> list[Action]:
        return self._fatal("internal_error", message, 1011)

    def on_server_close(self, code: int, reason: str) -> list[Action]:
        if code in (1000, 1001):
            return [Close(code, reason)]
        return self._fatal("internal_error", reason or "the session ended", 1011)

    def on_finalized_audio(self) -> list[Action]:
        return self._fatal("protocol_error", "the session was finalized: audio from here on is not transcribed")


def _words(msg: dict[str, Any]) -> list[dict[str, Any]]:
    if msg.get("words"):
        return msg["words"]
    texts = msg["text"].split()
    if not texts:
        return []
    step = max(msg["end_ms"] - msg["start_ms"], len(texts)) // len(texts)
    return [{"word": t, "start_ms": msg["start_ms"] + i * step, "end_ms": msg["start_ms"] + (i + 1) * step,
             "confidence": 0.0} for i, t in enumerate(texts)]
