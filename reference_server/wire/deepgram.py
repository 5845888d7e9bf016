"""The Deepgram-compatible stream (``GET /v1/listen``): a subset of Deepgram's live API over the
same sessions, engines and finalize path as the v1 stream, so clients and SDKs written for
Deepgram run unchanged against the reference server (deepgram-sdk 7.x, LiveKit Agents' and
Pipecat's Deepgram plugins). One adapter (``adapter.py``) like every vendor here.

Each connection is one session (``metadata.request_id`` is its session id, visible at
``GET /v1/sessions/{id}``). Raw PCM frames carry no offsets: every byte is appended (a sample split
across two frames is joined). ``KeepAlive`` only resets the timeout. ``Finalize`` flushes the
engine (those finals come with ``from_finalize: true``) and the stream goes on. ``CloseStream`` (or
an empty binary frame, Deepgram's older way) runs the shared finalize path, answers ``Metadata``
and closes 1000; the pipeline runs on without the connection. A connection that ends any other way
(client gone, ``NET-0001``, engine failure) is finalized as well: a Deepgram client cannot come
back to a session, so leaving it open would only hold a place against ``max_sessions`` forever.

Choices where Deepgram leaves room, made as Deepgram's own service and SDKs expect them:
- Credentials: ``Authorization: Token <key>`` (``Bearer`` too), or the subprotocol pair
  ``token, <key>`` that browsers use (answered with ``token``). Wrong or missing: HTTP 401 at the
  handshake, JSON body and ``dg-error`` header, as Deepgram does; SDKs report a failed connect.
- Parameters: ``encoding`` ``linear16`` (the default here), ``mulaw`` or ``alaw`` (telephony),
  ``sample_rate`` 8000, 16000 (the default), 24000, 44100 or 48000, converted to the engine's
  16 kHz with soxr (``wire/audio.py``); ``channels`` 1 (more is refused: the engines are mono);
  ``tag`` is recorded as the connection's tag (``GET /debug/connections?tag=``, and the session's
  ``metadata.tag``); ``interim_results`` and ``vad_events`` are ``true``/``false``;
  ``endpointing`` is ``false`` or milliseconds; ``utterance_end_ms`` a positive integer. A bad
  one is refused at the handshake with HTTP 400, its name in the body's ``err_msg`` and the
  ``dg-error`` header. Other Deepgram parameters (``language``, ``punctuate`` …) are accepted and
  ignored. At capacity: accepted, then closed 1013 (like the v1 stream).
- No audio and no message for ``deepgram_timeout_s`` (10 s, ``--deepgram-timeout-s``): close 1011
  with a reason starting ``NET-0001``.
- ``speech_final``: true on finals the engine closed itself (a pause, ``max_segment_s`` or, for the
  scripted engine, its segment size); false on flushed finals (``from_finalize``) and with
  ``endpointing=false``. The endpointing value itself does not tune the engine.
- ``SpeechStarted`` (``vad_events=true``): when the first result of a segment appears, with the
  segment's start. ``UtteranceEnd`` (``utterance_end_ms``): Deepgram's rule on word timings, a gap of
  at least ``utterance_end_ms`` after the last finalized word, seen either before the next words or
  in the audio the engine has taken without finding any. Gapless audio never has one.
- Interim results carry the transcript only (``words`` empty): the engines report words with
  finals.

Reference-server extensions (not Deepgram's): ``model`` may name one of this server's engines
(``pocketsphinx``, ``scripted``; any other model means the server's default engine), and ``script``
gives the scripted engine its words.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, QueryParams

from .. import __version__
from ..config import ServerConfig
from ..engines import ENGINES
from ..sessions import SessionError
from ..timefmt import iso
from .adapter import Action, Adapter, Audio, Close, Control, Deny, Finish, Flush, Send
from .audio import AudioConverter, AudioFormat, AudioFormatError

MODEL_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:reference-server:model"))  # stable, and a real UUID
UTTERANCE_POLL_S = 0.1  # how often the taken audio is checked for an utterance-ending gap
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
_ENCODINGS = {"linear16": "pcm_s16le", "mulaw": "mulaw", "alaw": "alaw"}


@dataclass(frozen=True)
class ListenOptions:
    """The query parameters of one ``/v1/listen`` connection, checked."""

    interim_results: bool = False  # Deepgram's default
    vad_events: bool = False
    endpointing: bool = True  # false only with endpointing=false
    utterance_end_ms: int | None = None
    engine: str | None = None  # extension: model=<engine>
    script: str = ""  # extension: the scripted engine's words
    audio: AudioFormat = AudioFormat("pcm_s16le", 16000)
    tag: str | None = None

    @classmethod
    def parse(cls, query: QueryParams) -> ListenOptions:
        """Raises SessionError(400) naming the first bad parameter."""
        encoding = query.get("encoding", "linear16")
        if encoding.lower() not in _ENCODINGS:
            raise _bad("encoding", f"encoding={encoding!r} is not supported: use linear16 (raw 16-bit PCM), mulaw "
                                   "or alaw")
        sample_rate = _int(query, "sample_rate", 16000)
        try:
            audio = AudioFormat(_ENCODINGS[encoding.lower()], sample_rate).check()
        except AudioFormatError as exc:
            raise _bad("sample_rate", f"sample_rate={sample_rate} is not supported: use 8000, 16000, 24000, 44100 "
                                      "or 48000 Hz") from exc
        channels = _int(query, "channels", 1)
        if channels != 1:
            raise _bad("channels", f"channels={channels} is not supported: this server transcribes one channel "
                                   "only; send mono audio (channels=1) or one connection per channel")
        endpointing = _endpointing(query)
        utterance_end_ms = _int(query, "utterance_end_ms", None)
        if utterance_end_ms is not None and utterance_end_ms <= 0:
            raise _bad("utterance_end_ms",
                       f"utterance_end_ms must be a positive number of milliseconds; got {utterance_end_ms}")
        model = query.get("model")
        return cls(
            interim_results=_flag(query, "interim_results", False),
            vad_events=_flag(query, "vad_events", False),
            endpointing=endpointing,
            utterance_end_ms=utterance_end_ms,
            engine=model if model in ENGINES else None,
            script=query.get("script", ""),
            audio=audio,
            tag=query.get("tag") or None,
        )

    def session_body(self, default_engine: str) -> dict[str, Any]:
        """The session creation request (the same validation as ``POST /v1/sessions``)."""
        options = {"interim_results": self.interim_results, "vad_events": self.vad_events,
                   "endpointing": self.endpointing, "utterance_end_ms": self.utterance_end_ms}
        return {"engine": self.engine or default_engine, "sample_rate": 16000, "script": self.script,
                "metadata": {"protocol": "deepgram", **{k: v for k, v in options.items() if v is not None},
                             **({"tag": self.tag} if self.tag else {})}}


def _bad(name: str, message: str) -> SessionError:
    return SessionError(400, "bad_request", message, name)


def _int(query: QueryParams, name: str, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _bad(name, f"{name} must be an integer; got {raw!r}") from None


def _endpointing(query: QueryParams) -> bool:
    """``endpointing``: true/false, or the pause in milliseconds (which means on)."""
    raw = query.get("endpointing")
    if raw is None or raw == "" or raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    if not raw.isdigit():
        raise _bad("endpointing", f"endpointing must be false or a number of milliseconds >= 0; got {raw!r}")
    return True


def _flag(query: QueryParams, name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _bad(name, f"{name} must be true or false; got {raw!r}")


class UtteranceEnds:
    """Deepgram's UtteranceEnd rule on word timings (stream milliseconds): once a final has come,
    an utterance ends where a gap of ``gap_ms`` follows its last finalized word with no words in it.
    Pure bookkeeping; the connection feeds it results and the audio the engine has taken."""

    def __init__(self, gap_ms: int) -> None:
        self.gap_ms = gap_ms
        self.last_final_end: int | None = None  # last finalized word not yet followed by an UtteranceEnd
        self.heard_until = 0  # end of the latest words seen (finals and interim results)

    def on_result(self, start_ms: int, end_ms: int, final_word_end: int | None) -> int | None:
        """A result about to go out (``final_word_end``: its last word's end, for a final).
        Returns the last word end to report in an UtteranceEnd sent before it, if the gap was there."""
        due = self._due(start_ms)
        self.heard_until = max(self.heard_until, end_ms)
        if final_word_end is not None:
            self.last_final_end = final_word_end
        return due

    def on_audio(self, taken_ms: int) -> int | None:
        """The engine has taken audio through ``taken_ms`` and reported all it found in it."""
        return self._due(taken_ms)

    def _due(self, now_ms: int) -> int | None:
        if self.last_final_end is None or now_ms - max(self.last_final_end, self.heard_until) < self.gap_ms:
            return None
        end, self.last_final_end = self.last_final_end, None
        return end


class DeepgramAdapter(Adapter):
    """Deepgram's live API as an adapter: takes the session layer's results, speaks Deepgram's."""

    protocol = "deepgram"
    create_before_accept = True  # a bad script or model is a 400 at the handshake, as Deepgram refuses

    def __init__(self, query: QueryParams, headers: Headers, config: ServerConfig) -> None:
        super().__init__(query, headers, config)
        self.options = ListenOptions()
        self.converter = AudioConverter(self.options.audio)
        self.created_at = 0.0
        self.model = config.engine
        self.metadata_sent = False
        self.from_finalize = False  # set while a Finalize/CloseStream flush runs
        self.speech_segment = -1  # last segment id a SpeechStarted (or its result) was seen for
        self.utterances: UtteranceEnds | None = None
        self.sha = hashlib.sha256()
        self.bytes_in = 0
        self.refused_audio = False
        self.idle_timeout_s = config.deepgram_timeout_s  # Deepgram's is 10 s

    # --- handshake -----------------------------------------------------------------------
    def credential(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("token", "bearer") and value.strip():
            return value.strip()
        # browsers cannot set headers: Deepgram takes the key as the subprotocol pair "token, <key>"
        protocols = [p.strip() for p in self.headers.get("sec-websocket-protocol", "").split(",")]
        if len(protocols) == 2 and protocols[0].lower() == "token" and protocols[1]:
            self.subprotocol = protocols[0]
            return protocols[1]
        return None

    def unauthorized(self) -> list[Action]:
        return [_deny(401, "INVALID_AUTH", "Invalid credentials: send Authorization: Token <API key> (or the "
                                           "subprotocols token, <API key>)")]

    def on_connect(self) -> list[Action]:
        try:
            self.options = ListenOptions.parse(self.query)
        except SessionError as exc:
            return [_deny(400, "INVALID_QUERY_PARAMETER", exc.message)]
        self.tag = self.options.tag
        self.converter = AudioConverter(self.options.audio)
        if self.options.utterance_end_ms:
            self.utterances = UtteranceEnds(self.options.utterance_end_ms)
            self.tick_s = UTTERANCE_POLL_S
        return []

    def session_body(self) -> dict[str, Any]:
        return self.options.session_body(self.default_engine)

    def on_refused(self, status: int, code: str, message: str) -> list[Action]:
        if status == 503:
            return [Close(1013, "at capacity: try again later")]
        return [_deny(status, "INVALID_QUERY_PARAMETER" if status == 400 else code, message)]

    def on_session(self, session_id: str, created_at: float) -> list[Action]:
        super().on_session(session_id, created_at)
        self.created_at = created_at
        self.model = self.options.engine or self.default_engine
        return []  # Deepgram sends nothing until it has results

    # --- frames --------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> list[Action]:
        if not data:  # an empty binary frame: Deepgram's older CloseStream
            return [Control("CloseStream", {"empty_frame": True}), *self._close_stream()]
        self.sha.update(data)
        self.bytes_in += len(data)
        return [Audio(self.converter.convert(data))]  # a sample split across frames waits for its other bytes

    def on_finalized_audio(self) -> list[Action]:
        # finalized over HTTP meanwhile: the engines are closed, nothing more is transcribed
        if self.refused_audio:
            return []
        self.refused_audio = True
        return [Send(_error("session_closed", "the session is finalized: audio from here on is not transcribed"))]

    def on_text(self, text: str) -> list[Action]:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "KeepAlive":
            return [Control(kind)]
        if kind == "Finalize":
            return [Control(kind), Flush()]
        if kind == "CloseStream":
            return [Control(kind), *self._close_stream()]
        return [Send(_error("bad_message", f"unknown control message {text[:80]!r}; expected KeepAlive, "
                                           "Finalize or CloseStream"))]

    def _close_stream(self) -> list[Action]:
        """CloseStream: the resampler's tail, the last finals (from_finalize), the shared finalize
        path, Metadata, 1000."""
        return [Audio(self.converter.flush()), Finish()]

    def on_idle(self) -> list[Action]:
        return [Close(1011, f"NET-0001: no audio or message received within the {self.idle_timeout_s:g} s "
                            "timeout window")]

    def on_tick(self, taken_ms: int) -> list[Action]:
        """An utterance can also end in silence the engine has taken without finding words."""
        due = self.utterances.on_audio(taken_ms) if self.utterances is not None else None
        return [] if due is None else [Send(self._utterance_end(due))]

    # --- results -------------------------------------------------------------------------
    def flush_started(self) -> None:
        self.from_finalize = True  # finals from here on answer the Finalize

    def on_flushed(self) -> list[Action]:
        self.from_finalize = False
        return []

    def on_finished(self) -> list[Action]:
        return [*self._metadata_once(), Close(1000)]

    def on_server_close(self, code: int, reason: str) -> list[Action]:
        if code == 1000:  # e.g. finalized over HTTP meanwhile and the pipeline is done
            return [*self._metadata_once(), Close(code, reason)]
        return [Close(code, reason)]

    def on_engine_error(self, message: str) -> list[Action]:
        return [Send(_error("internal", message))]

    def _metadata_once(self) -> list[Action]:
        if self.metadata_sent:
            return []
        self.metadata_sent = True
        return [Send(self.metadata())]

    def on_result(self, msg: dict[str, Any], *, is_final: bool) -> list[Action]:
        out: list[Action] = []
        words = msg.get("words") or []
        if self.utterances is not None:
            word_end = (words[-1]["end_ms"] if words else msg["end_ms"]) if is_final else None
            start = words[0]["start_ms"] if words else msg["start_ms"]
            due = self.utterances.on_result(start, msg["end_ms"], word_end)
            if due is not None:
                out.append(Send(self._utterance_end(due)))
        if msg["segment_id"] > self.speech_segment:
            self.speech_segment = msg["segment_id"]
            if self.options.vad_events:
                out.append(Send({"type": "SpeechStarted", "channel": [0], "timestamp": msg["start_ms"] / 1000}))
        if is_final or self.options.interim_results:
            out.append(Send(self._results(msg, is_final=is_final)))
        return out

    def _results(self, msg: dict[str, Any], *, is_final: bool) -> dict[str, Any]:
        words = [{"word": w["word"], "start": w["start_ms"] / 1000, "end": w["end_ms"] / 1000,
                  "confidence": w["confidence"], "punctuated_word": w["word"]} for w in msg.get("words", [])]
        confidence = sum(w["confidence"] for w in words) / len(words) if words else 0.0
        from_finalize = is_final and self.from_finalize
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": (msg["end_ms"] - msg["start_ms"]) / 1000,
            "start": msg["start_ms"] / 1000,
            "is_final": is_final,
            "speech_final": is_final and not from_finalize and self.options.endpointing,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": msg["text"], "confidence": confidence, "words": words}]},
            "metadata": {"request_id": self.session_id, "model_info": self._model_info(), "model_uuid": MODEL_UUID},
        }

    def _utterance_end(self, last_word_end_ms: int) -> dict[str, Any]:
        return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_word_end_ms / 1000}

    def _model_info(self) -> dict[str, str]:
        return {"name": self.model, "version": __version__, "arch": "reference"}

    def metadata(self) -> dict[str, Any]:
        return {"type": "Metadata", "transaction_key": "deprecated", "request_id": self.session_id,
                "sha256": self.sha.hexdigest(), "created": iso(self.created_at),
                "duration": self.options.audio.duration_ms(self.bytes_in) / 1000, "channels": 1,
                "models": [MODEL_UUID], "model_info": {MODEL_UUID: self._model_info()}}


def _error(variant: str, message: str) -> dict[str, Any]:
    return {"type": "Error", "variant": variant, "description": message, "message": message}


def _deny(status: int, code: str, message: str) -> Deny:
    body = {"err_code": code, "err_msg": message, "category": code, "message": message}
    return Deny(status, body, {"dg-error": message})
