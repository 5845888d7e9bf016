"""Wyoming speech-to-text over the shared sessions: over TCP (``--wyoming-port``) and over a
WebSocket (``GET /v1/wyoming``). Framing: ``wyoming_frames``.

The ``wyoming`` package's own ``AsyncTcpClient`` works unchanged against the TCP port
(``Transcribe``, ``AudioStart``, ``AudioChunk``..., ``AudioStop``, then read until ``Transcript``).

Wire choices, as the Wyoming protocol (rhasspy / OHF-voice ``wyoming``) defines them:
- Credentials: none over TCP (Wyoming has none; the listener is opened by a flag, on the address
  given). Over the WebSocket, ``Authorization: Bearer <key>`` or the ``token`` query parameter, as
  the other endpoints; a missing or wrong key is refused at the handshake (401).
- Framing: over TCP events come back to back in any split; over the WebSocket each message is one
  whole event (binary, or text for an event without payload). Bytes that break the framing, or a
  WebSocket message that ends inside an event, get ``error{code: bad_frame}`` and the connection
  closes (1008 on the WebSocket).
- ``describe`` -> ``info`` with one ASR program (``reference-server``) whose models are this
  server's engines, ``supports_transcript_streaming: true``.
- ``transcribe{name?, language?}`` then ``audio-start{rate, width, channels}``: the session is
  created at ``audio-start`` (rates 8000/16000/24000/44100/48000, width 2, mono; resampled to the
  engine's 16 kHz), and ``transcript-start`` says so. ``audio-chunk`` (same format, PCM payload)
  feeds it; a chunk before ``audio-start`` or in another format is an error. ``ping`` -> ``pong``.
  Other events are dropped, as Wyoming peers do (recorded in ``/debug/connections``).
- Results: each engine final, as it is made, is one ``transcript-chunk{text}`` (chunks only add
  text: interim hypotheses, which the engine may still revise, are not sent). ``audio-stop``: the
  last finals, the shared finalize path, then ``transcript-stop`` and ``transcript{text}`` with the
  whole text, and the connection closes (1000): one transcription per connection.
- No audio or event for ``idle_timeout_s``: ``error{code: idle_timeout}``, closed (4408). A client
  that goes away ends (finalizes) its session. Errors are ``error{text, code}``, then the close.

Reference-server extensions, ignored by other Wyoming peers: ``transcribe.name`` may name one of
this server's engines and ``transcribe.script`` gives the scripted engine its words;
``transcript-start`` and ``transcript`` carry ``session_id`` (``GET /v1/sessions/{id}``).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, QueryParams

from .. import __version__
from ..config import ServerConfig
from ..engines import ENGINES
from .adapter import Action, Adapter, Audio, Close, Control, Finish, Open, Received, SendRaw
from .audio import AudioConverter, AudioFormat, AudioFormatError
from .wyoming_frames import EventReader, FrameError, encode

PROGRAM = "reference-server"
_ATTRIBUTION = {"name": "transcription-harness reference server", "url": "https://github.com/rhasspy/wyoming"}


def info_data(default_engine: str) -> dict[str, Any]:
    """The ``info`` answer to ``describe``: this server as one ASR program, its engines as models."""
    engines = [default_engine] + [e for e in ENGINES if e != default_engine]
    models = [{"name": e, "description": f"{e} engine", "attribution": _ATTRIBUTION, "installed": True,
               "version": __version__, "languages": ["en"]} for e in engines]
    return {"asr": [{"name": PROGRAM, "description": "reference transcription server", "attribution": _ATTRIBUTION,
                     "installed": True, "version": __version__, "models": models,
                     "supports_transcript_streaming": True}],
            "tts": [], "handle": [], "intent": [], "wake": [], "mic": [], "snd": []}


class WyomingAdapter(Adapter):
    """Wyoming over a WebSocket: one whole event per message."""

    protocol = "wyoming"
    binary_is_audio = False  # a binary message is a whole event; the audio is its payload
    whole_messages = True

    def __init__(self, query: QueryParams, headers: Headers, config: ServerConfig) -> None:
        super().__init__(query, headers, config)
        self.idle_timeout_s = config.idle_timeout_s
        self.reader = EventReader()
        self.transcribe: dict[str, Any] = {}
        self.format: tuple[int, int, int] | None = None  # (rate, width, channels) of audio-start
        self.converter: AudioConverter | None = None
        self.stopped = False
        self.texts: list[str] = []

    def credential(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            return value.strip()
        return self.query.get("token") or None

    def session_body(self) -> dict[str, Any]:
        body = self.body(self.transcribe.get("name"), language=self.transcribe.get("language") or "en")
        script = self.transcribe.get("script")
        body["script"] = script if isinstance(script, str) else ""
        return body

    # --- frames --------------------------------------------------------------------------
    def _fatal(self, code: str, text: str, close: int = 1008) -> list[Action]:
        return [SendRaw(encode("error", {"text": text, "code": code})), Close(close, code)]

    def on_text(self, text: str) -> list[Action]:
        return self.on_bytes(text.encode("utf-8"))

    def on_bytes(self, data: bytes) -> list[Action]:
        try:
            events = self.reader.feed(data)
            if self.whole_messages and not self.reader.at_boundary:
                raise FrameError(f"a WebSocket message ended inside an event (each message carries whole events): "
                                 f"{data[:100]!r}")
        except FrameError as exc:
            return self._fatal("bad_frame", str(exc))
        out: list[Action] = []
        for event in events:
            out += self._event(event.type, event.data, event.payload)
            if any(isinstance(a, Close) for a in out):
                break
        return out

    def _event(self, kind: str, data: dict[str, Any], payload: bytes) -> list[Action]:
        if kind == "describe":
            return [Control("describe"), SendRaw(encode("info", info_data(self.default_engine)))]
        if kind == "ping":
            return [SendRaw(encode("pong", {"text": data.get("text")} if data.get("text") else None))]
        if kind == "transcribe":
            if self.format is not None:
                return self._fatal("protocol_error", "transcribe after audio-start: one transcription per connection")
            self.transcribe = data
            return [Control("transcribe", {k: data[k] for k in ("name", "language") if k in data})]
        if kind == "audio-start":
            return self._start(data)
        if kind == "audio-chunk":
            return self._chunk(data, payload)
        if kind == "audio-stop":
            if self.converter is None:
                return self._fatal("protocol_error", "audio-stop before audio-start")
            if self.stopped:
                return self._fatal("protocol_error", "audio-stop received twice")
            self.stopped = True
            return [Control("audio-stop"), Audio(self.converter.flush()), Finish()]
        return [Control(f"dropped:{kind[:40]}")]  # Wyoming peers drop events they do not know

    def _audio_format(self, data: dict[str, Any]) -> tuple[int, int, int] | str:
        fields = tuple(data.get(k) for k in ("rate", "width", "channels"))
        if any(isinstance(v, bool) or not isinstance(v, int) for v in fields):
            return f"rate, width and channels must be integers, got {fields!r}"
        rate, width, channels = fields  # type: ignore[misc]
        if width != 2 or channels != 1:
            return f"only 16-bit mono audio is taken here (width 2, channels 1), got width {width}, channels {channels}"
        return rate, width, channels

    def _start(self, data: dict[str, Any]) -> list[Action]:
        if self.format is not None:
            return self._fatal("protocol_error", "audio-start received twice: one transcription per connection")
        fmt = self._audio_format(data)
        if isinstance(fmt, str):
            return self._fatal("unsupported_audio", f"audio-start: {fmt}")
        try:
            self.converter = AudioConverter(AudioFormat("pcm_s16le", fmt[0]))
        except AudioFormatError as exc:
            return self._fatal("unsupported_audio", f"audio-start: {exc}")
        self.format = fmt
        return [Control("audio-start", {"rate": fmt[0]}), Open()]

    def _chunk(self, data: dict[str, Any], payload: bytes) -> list[Action]:
        if self.converter is None or self.format is None:
            return self._fatal("protocol_error", "audio-chunk before audio-start")
        if self.stopped:
            return self._fatal("protocol_error", "audio-chunk after audio-stop")
        fmt = self._audio_format(data)
        if fmt != self.format:
            return self._fatal("unsupported_audio", f"audio-chunk format {fmt} differs from audio-start's {self.format}")
        if not payload:
            return []
        return [Received(len(payload)), Audio(self.converter.convert(payload))]

    # --- the session layer ---------------------------------------------------------------
    def on_session(self, session_id: str, created_at: float) -> list[Action]:
        super().on_session(session_id, created_at)
        return [SendRaw(encode("transcript-start", {"language": self.transcribe.get("language") or "en",
                                                    "session_id": session_id}))]

    def on_refused(self, status: int, code: str, message: str) -> list[Action]:
        return self._fatal("capacity" if status == 503 else "bad_request", message, 1013 if status == 503 else 1008)

    def on_result(self, msg: dict[str, Any], *, is_final: bool) -> list[Action]:
        text = str(msg.get("text", "")).strip()
        if not is_final or not text:
            return []  # chunks only add text: a hypothesis the engine may revise is not one
        chunk = (" " if self.texts else "") + text
        self.texts.append(text)
        return [SendRaw(encode("transcript-chunk", {"text": chunk}))]

    def on_finished(self) -> list[Action]:
        data = {"text": " ".join(self.texts), "language": self.transcribe.get("language") or "en",
                "session_id": self.session_id}
        return [SendRaw(encode("transcript-stop")), SendRaw(encode("transcript", data)), Close(1000)]

    def on_idle(self) -> list[Action]:
        return self._fatal("idle_timeout", f"no event for {self.idle_timeout_s:g} s", 4408)

    def on_engine_error(self, message: str) -> list[Action]:
        return self._fatal("engine_error", message, 1011)

    def on_server_close(self, code: int, reason: str) -> list[Action]:
        return self._fatal("server_closed", reason or f"the server closed the session ({code})", code)

    def on_finalized_audio(self) -> list[Action]:
        return self._fatal("protocol_error", "the session was finalized: audio from here on is not transcribed")


class WyomingTcpAdapter(WyomingAdapter):
    """Wyoming over TCP: events back to back, split anywhere."""

    whole_messages = False
