"""The Deepgram live API subset (PROTOCOL.md, "Deepgram-compatible stream") as a sans-I/O codec.

No session step: each connection is a session whose id is the ``request_id`` the server reports in
``Results.metadata`` and ``Metadata``. Audio is raw PCM (no offsets, no acks, no resume), so this
codec keeps two small pieces of per-session state:

- segment ids, assigned in order of finals (0, 1, 2 …), continuing across reconnects so that a
  history never holds two different finals under one id;
- a time base: Deepgram's ``start``/``duration`` (seconds) count from the start of the
  *connection's* audio, so after a reconnect the codec adds the audio already sent before it
  (``connect_request(resume_offset=...)``) to put every time on the session's audio clock.
"""

from __future__ import annotations

import json
import math
import re
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

_CONTROL_TYPES = {"keepalive": "KeepAlive", "finalize": "Finalize", "close_stream": "CloseStream"}
_ERROR_REASON = re.compile(r"^\s*([A-Z]{2,8}-\d{4})\b")  # NET-0001, DATA-0000 …


class DeepgramCodec(StreamOnlyCodec):
    name: ClassVar[str] = "deepgram"
    # What Deepgram's live API itself promises. A backend that also serves the reference server's
    # HTTP extras (GET /v1/sessions/{request_id}, /health) adds them with --capabilities.
    capabilities: ClassVar[frozenset[str]] = frozenset({"api_key", "keepalive", "idle_timeout", "partials",
                                                                "endpointing"})
    stream_path: ClassVar[str] = "/v1/listen"
    idle_timeout_s: ClassVar[float] = 10.0  # "no audio or message for 10 s"
    idle_close: ClassVar[tuple[int, str]] = (1011, "NET-0001")

    def __init__(self) -> None:
        self.next_segment_id = 0
        self.time_base_ms = 0.0
        self.learned_session_id: str | None = None
        self.request_ids: list[str] = []  # one per connection that reported one

    # --- stream ------------------------------------------------------------------------------
    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest:
        """``resume_offset``: bytes of the session's audio sent before this connection (sets the
        time base). ``last_segment_id`` is unused: Deepgram does not replay finals."""
        p = session.params
        self.time_base_ms = self.time_base_ms_for(resume_offset, p.sample_rate)
        query: dict[str, Any] = {
            "encoding": "linear16",
            "sample_rate": p.sample_rate,
            "channels": 1,
            "interim_results": _flag(p.interim_results),
        }
        if p.endpointing is not None:
            query["endpointing"] = _flag(p.endpointing) if isinstance(p.endpointing, bool) else int(p.endpointing)
        if p.utterance_end_ms is not None:
            query["utterance_end_ms"] = int(p.utterance_end_ms)
        if p.vad_events:
            query["vad_events"] = "true"
        if p.script:
            # Reference-server extension: Deepgram's `model` picks the engine, and the scripted
            # engine (a test double) needs its script. A real Deepgram ignores neither silently,
            # so these are sent only when a script was asked for.
            query["model"] = p.engine
            query["script"] = p.script
        return ConnectRequest(
            f"{target.ws_base}{self.stream_path}?{urlencode(query)}", {"Authorization": f"Token {target.api_key}"}
        )

    def encode_audio(self, offset: int, pcm: bytes) -> bytes:
        """Raw PCM: the offset is checked but not sent (Deepgram frames carry none)."""
        check_audio(offset, pcm)
        return bytes(pcm)

    def encode_control(self, kind: str) -> str:
        check_control_kind(kind)
        return json.dumps({"type": _CONTROL_TYPES[kind]})

    def decode(self, frame: bytes | str) -> list[Event]:
        data = load_object(frame, "deepgram")
        kind = data.get("type")
        f = Fields(data, f"deepgram {kind}", frame)
        if kind == "Results":
            return self._results(f)
        if kind in ("SpeechStarted", "UtteranceEnd"):
            return [Info(kind, _rest(data))]
        if kind == "Metadata":
            request_id = f.str("request_id", None)
            if request_id:
                self._learn(request_id)
            return [Info("Metadata", _rest(data))]
        if kind == "Error":
            code = f.str("variant", "") or f.str("err_code", "") or "error"
            message = f.str("description", "") or f.str("message", "") or f.str("err_msg", "")
            return [Error(code=code, message=message, retryable=False, details=_rest(data))]
        raise ProtocolError(
            f"deepgram: unknown message type {kind!r}; expected Results, SpeechStarted, UtteranceEnd, Metadata "
            f"or Error: {frame!r:.120}"
        )

    def closed(self, code: int, reason: str = "") -> Closed:
        return Closed(code, reason)

    def close_events(self, code: int, reason: str = "") -> list[Event]:
        """A close whose reason starts with a Deepgram error code (``NET-0001`` …) is an Error too."""
        match = _ERROR_REASON.match(reason or "")
        events: list[Event] = []
        if code != 1000 and match:
            events.append(Error(code=match.group(1), message=reason, retryable=code == 1011, details={"close_code": code}))
        events.append(self.closed(code, reason))
        return events

    # --- internals ---------------------------------------------------------------------------
    def _learn(self, request_id: str) -> None:
        if self.learned_session_id is None:
            self.learned_session_id = request_id
        if request_id not in self.request_ids:
            self.request_ids.append(request_id)

    def _ms(self, seconds: float) -> int:
        value = self.time_base_ms + seconds * 1000.0
        if not math.isfinite(value):
            raise ProtocolError(f"deepgram: a time of {seconds!r} s does not fit in milliseconds")
        return round(value)

    def _results(self, f: Fields) -> list[Event]:
        channel = f.sub("channel", f.get("channel", None), "channel")
        alternatives = channel.list("alternatives")
        if not alternatives:
            raise ProtocolError(f"deepgram Results: channel.alternatives is empty: {f.frame!r:.120}")
        alt = channel.sub("alternatives[0]", alternatives[0], "alternatives[0]")
        metadata = f.dict("metadata", None)
        if metadata is not None:
            request_id = f.sub("metadata", metadata, "metadata").str("request_id", None)
            if request_id:
                self._learn(request_id)
        start = f.number("start", minimum=0)
        duration = f.number("duration", minimum=0)
        text = alt.str("transcript")
        is_final = f.bool("is_final")
        speech_final = f.bool("speech_final", False)
        from_finalize = f.bool("from_finalize", False)
        segment_id = self.next_segment_id
        start_ms, end_ms = self._ms(start), self._ms(start + duration)
        if not is_final:
            return [Partial(segment_id, text, start_ms, end_ms)]
        words = []
        for i, raw in enumerate(alt.list("words", [])):
            w = alt.sub(f"words[{i}]", raw, f"words[{i}]")
            words.append(
                Word(
                    w.str("word"),
                    self._ms(w.number("start", minimum=0)),
                    self._ms(w.number("end", minimum=0)),
                    float(w.number("confidence", 1.0)),
                )
            )
        self.next_segment_id += 1
        events: list[Event] = [Final(segment_id, text, start_ms, end_ms, tuple(words))]
        if speech_final or from_finalize:
            events.append(Info("endpoint", {"segment_id": segment_id, "speech_final": speech_final, "from_finalize": from_finalize}))
        return events


def _flag(value: bool | int) -> str:
    return "true" if value else "false"


def _rest(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "type"}
