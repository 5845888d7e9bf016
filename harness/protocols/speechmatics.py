"""Speechmatics real-time (``GET /v2``) as a sans-I/O codec.

No session step: each connection is a session whose id comes in ``RecognitionStarted``. The
opening frame is ``StartRecognition`` (raw ``pcm_s16le`` at the session's rate, language ``en``,
partials on). Audio is raw PCM in binary frames, each acknowledged by ``AudioAdded{seq_no}``
(kept as Info: they count frames, not bytes, so they are not offsets). No resume, no segment ids:
finals are numbered 0, 1, 2 ... here, in order, across reconnects, and times (seconds from the
connection's first audio) are put on the session's audio clock with the audio sent before the
connection (``connect_request(resume_offset=...)``).

- ``AddTranscript`` (format 2.1): a Final with ``metadata.transcript`` (stripped) as its text and
  one Word per ``results`` entry of type ``word`` (``alternatives[0].content``). One whose
  transcript is empty is Info ``empty_transcript``. ``AddPartialTranscript``: a Partial of the
  open segment.
- ``RecognitionStarted``, ``AudioAdded``, ``EndOfUtterance``, ``EndOfTranscript``, ``Info``,
  ``Warning``: Info. ``Error{type, reason}``: Error with ``type`` as its code (the server closes
  next).
- Controls: finalize -> ``ForceEndOfUtterance`` (the open segment ends now, the stream goes on),
  close_stream -> ``EndOfStream{last_seq_no}`` with the number of audio frames encoded on this
  connection (the server answers its last finals, ``EndOfTranscript`` and closes 1000). The
  protocol has no keepalive message.

Reference-server extensions, sent only when a script is asked for: ``transcription_config.model``
names the engine and the ``script`` query parameter gives the scripted engine its words.
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
    SessionParams,
    StreamTarget,
    check_audio,
    check_control_kind,
)
from harness.protocols.stream_only import StreamOnlyCodec
from harness.protocols.events import Closed, Error, Event, Final, Info, Partial, Word

_INFO_MESSAGES = ("AudioAdded", "EndOfUtterance", "EndOfTranscript", "Info", "Warning")
_RETRYABLE = {"quota_exceeded", "internal_error", "job_error"}


class SpeechmaticsCodec(StreamOnlyCodec):
    name: ClassVar[str] = "speechmatics"
    # Streaming only; the reference server's HTTP extras (GET /v1/sessions/{RecognitionStarted.id},
    # /health) are added with --capabilities.
    capabilities: ClassVar[frozenset[str]] = frozenset({"api_key", "partials", "endpointing"})  # AddPartialTranscript
    stream_path: ClassVar[str] = "/v2"

    def __init__(self) -> None:
        self.next_segment_id = 0
        self.time_base_ms = 0.0
        self.seq_no = 0  # audio frames encoded on this connection
        self.params = SessionParams()
        self.learned_session_id: str | None = None
        self.session_ids: list[str] = []  # one per connection (RecognitionStarted.id)

    # --- stream ------------------------------------------------------------------------------
    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest:
        self.params = p = session.params
        self.time_base_ms = self.time_base_ms_for(resume_offset, p.sample_rate)
        self.seq_no = 0
        url = f"{target.ws_base}{self.stream_path}"
        if p.script:
            url += "?" + urlencode({"script": p.script})
        return ConnectRequest(url, {"Authorization": f"Bearer {target.api_key}"})

    def opening_frames(self) -> list[str]:
        p = self.params
        config: dict[str, Any] = {"language": "en", "enable_partials": True}
        if p.script:
            config["model"] = p.engine
        return [json.dumps({"message": "StartRecognition",
                            "audio_format": {"type": "raw", "encoding": "pcm_s16le", "sample_rate": p.sample_rate},
                            "transcription_config": config})]

    def encode_audio(self, offset: int, pcm: bytes) -> bytes:
        check_audio(offset, pcm)
        self.seq_no += 1
        return bytes(pcm)

    def encode_control(self, kind: str) -> str | None:
        check_control_kind(kind)
        if kind == "finalize":
            return json.dumps({"message": "ForceEndOfUtterance"})
        if kind == "close_stream":
            return json.dumps({"message": "EndOfStream", "last_seq_no": self.seq_no})
        return None  # no keepalive message in this protocol

    def decode(self, frame: bytes | str) -> list[Event]:
        data = load_object(frame, "speechmatics")
        kind = data.get("message")
        f = Fields(data, f"speechmatics {kind}", frame)
        if kind in ("AddTranscript", "AddPartialTranscript"):
            return self._transcript(f, final=kind == "AddTranscript")
        if kind == "RecognitionStarted":
            session_id = f.str("id")
            self.learned_session_id = self.learned_session_id or session_id
            if session_id not in self.session_ids:
                self.session_ids.append(session_id)
            return [Info(kind, _rest(data))]
        if kind == "AudioAdded":
            f.number("seq_no", minimum=0)
            return [Info(kind, _rest(data))]
        if kind in _INFO_MESSAGES:
            return [Info(kind, _rest(data))]
        if kind == "Error":
            error_type = f.str("type", "error")
            return [Error(code=error_type, message=f.str("reason", ""), retryable=error_type in _RETRYABLE,
                          details=_rest(data))]
        raise ProtocolError(f"speechmatics: unknown message {kind!r}; expected RecognitionStarted, AudioAdded, "
                            f"AddPartialTranscript, AddTranscript, EndOfUtterance, EndOfTranscript, Info, Warning "
                            f"or Error: {frame!r:.120}")

    def closed(self, code: int, reason: str = "") -> Closed:
        return Closed(code, reason)

    def close_events(self, code: int, reason: str = "") -> list[Event]:
        return [self.closed(code, reason)]  # errors come as Error messages before the close

    # --- internals ---------------------------------------------------------------------------
    def _ms(self, seconds: float) -> int:
        out = self.time_base_ms + seconds * 1000.0
        if not math.isfinite(out):
            raise ProtocolError(f"speechmatics: a time of {seconds!r} s is not a number")
        return round(out)

    def _transcript(self, f: Fields, final: bool) -> list[Event]:
        meta = f.sub("metadata", f.get("metadata", None), "metadata")
        text = meta.str("transcript").strip()
        start, end = self._ms(meta.number("start_time", minimum=0)), self._ms(meta.number("end_time", minimum=0))
        if end < start:
            raise ProtocolError(f"speechmatics: metadata.end_time is before start_time: {f.frame!r:.120}")
        words = []
        for i, raw in enumerate(f.list("results", [])):
            r = f.sub(f"results[{i}]", raw, f"results[{i}]")
            if r.str("type") != "word":
                continue  # punctuation and speaker changes are in metadata.transcript already
            alternatives = r.list("alternatives")
            if not alternatives:
                raise ProtocolError(f"speechmatics: results[{i}].alternatives is empty: {f.frame!r:.120}")
            alt = r.sub(f"results[{i}].alternatives[0]", alternatives[0], "alternatives[0]")
            words.append(Word(alt.str("content"), self._ms(r.number("start_time", minimum=0)),
                              self._ms(r.number("end_time", minimum=0)), float(alt.number("confidence", 1.0))))
        segment_id = self.next_segment_id
        if not final:
            return [Partial(segment_id, text, start, end)]
        if not text:
            return [Info("empty_transcript", {"start_ms": start, "end_ms": end})]
        self.next_segment_id += 1
        return [Final(segment_id, text, start, end, tuple(words))]


def _rest(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "message"}
