"""OpenAI Realtime transcription (``GET /v1/realtime?intent=transcription``) as a sans-I/O codec.

No session step: each connection is a transcription session. The opening frame is
``session.update`` (GA shape: ``type: transcription``, ``audio.input.format`` ``audio/pcm`` at
24 kHz, ``turn_detection: null``). Audio is text: ``input_audio_buffer.append`` with base64 PCM16,
resampled here from the harness's 16 kHz to the protocol's 24 kHz by linear interpolation
(:class:`Upsampler`): it has no filter delay, so the last sample goes out with the last frame
and a commit covers all the audio sent (a filtering resampler holds back a tail that only a
flush, a second frame, would send). What it adds above 8 kHz is removed by the 24 -> 16 kHz
resampling a backend does before a 16 kHz engine.

Why manual turns (``turn_detection: null``): with server VAD the server answers a commit of
trailing silence with nothing at all, so a client could not tell when the last words are in.
Without VAD every commit has exactly one answer: ``input_audio_buffer.committed``, a ``delta``
and ``...transcription.completed`` with the transcript of all audio since the last commit, or an
``error`` ``input_audio_buffer_commit_empty`` when there was none. So:

- Controls: finalize -> ``input_audio_buffer.commit`` (the audio so far becomes one final, the
  stream goes on); close_stream -> the same commit, after which the answer to it (``completed``,
  ``failed``, or the empty-commit error) sets ``stream_finished``: the protocol has no end
  message and the server never closes by itself, so the driver then closes 1000 and the session
  is complete. No keepalive message (the protocol has none).
- ``...transcription.completed``: a Final (text only: the protocol gives no word times, so its
  span is the committed audio on the session's clock); an empty transcript is Info
  ``empty_transcript``. ``...delta``: a Partial of the open segment (the deltas so far).
  ``...failed`` and ``error``: Error with OpenAI's ``code``. Session and buffer events: Info.
- No resume, no segment ids, no pipeline events: finals are numbered 0, 1, 2 ... here, in order,
  across reconnects. Audio not committed when a connection drops is gone (the server's buffer
  goes with it), as it is with OpenAI.

Reference-server extensions, sent only when a script is asked for: ``transcription.model`` (and
the ``model`` query parameter) names the engine and ``script`` gives the scripted engine its words.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar
from urllib.parse import urlencode

import numpy as np

from harness.protocols._fields import Fields, load_object
from harness.protocols.base import (
    BYTES_PER_SECOND,
    ConnectRequest,
    ProtocolError,
    SessionInfo,
    SessionParams,
    StreamTarget,
    check_audio,
    check_control_kind,
)
from harness.protocols.stream_only import StreamOnlyCodec
from harness.protocols.events import Closed, Error, Event, Final, Info, Partial

WIRE_RATE = 24_000  # audio/pcm is 24 kHz in the Realtime API
DEFAULT_MODEL = "gpt-4o-transcribe"
_PREFIX = "conversation.item.input_audio_transcription."
_INFO_EVENTS = frozenset({
    "session.created", "session.updated", "transcription_session.created", "transcription_session.updated",
    "input_audio_buffer.committed", "input_audio_buffer.cleared", "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped", "rate_limits.updated", "conversation.item.created",
    "conversation.item.added", "conversation.item.done",
})
_EMPTY_COMMIT = "input_audio_buffer_commit_empty"
_RETRYABLE = {"server_error", "session_limit", "rate_limit_exceeded"}


class OpenAIRealtimeCodec(StreamOnlyCodec):
    name: ClassVar[str] = "openai-realtime"
    capabilities: ClassVar[frozenset[str]] = frozenset({"api_key"})
    stream_path: ClassVar[str] = "/v1/realtime"
    session_lookup_path: ClassVar[bool] = False  # the stream names no session to look up
    no_audio_errors: ClassVar[frozenset[str]] = frozenset({_EMPTY_COMMIT})  # OpenAI's answer to an empty commit

    def __init__(self) -> None:
        self.next_segment_id = 0
        self.params = SessionParams()
        self.time_base_ms = 0.0  # session audio before this connection
        self.sent_ms = 0.0  # audio encoded on this connection
        self.committed_ms = 0.0  # of it, audio covered by an answered commit
        self.commit_marks: list[float] = []  # sent_ms at each commit not answered yet
        self.closing = False  # the close_stream commit went out
        self.stream_finished = False
        self.delta_text = ""
        self.learned_session_id: str | None = None  # the protocol reports none
        self._resampler: Upsampler | None = None

    # --- stream ---------------------------------------------------------------------------
    def connect_request(
        self,
        target: StreamTarget,
        session: SessionInfo,
        resume_offset: int | None = None,
        last_segment_id: int | None = None,
    ) -> ConnectRequest:
        self.params = p = session.params
        if p.sample_rate != 16_000:
            raise ValueError(f"openai-realtime: the harness streams 16000 Hz audio; got sample_rate={p.sample_rate}")
        self.time_base_ms = self.time_base_ms_for(resume_offset, p.sample_rate)
        self.sent_ms = self.committed_ms = 0.0
        self.commit_marks = []
        self.closing = self.stream_finished = False
        self.delta_text = ""
        self._resampler = Upsampler()
        query: dict[str, str] = {"intent": "transcription"}
        if p.script:
            query["model"] = p.engine
            query["script"] = p.script
        return ConnectRequest(f"{target.ws_base}{self.stream_path}?{urlencode(query)}",
                              {"Authorization": f"Bearer {target.api_key}"})

    def opening_frames(self) -> list[str]:
        model = self.params.engine if self.params.script else DEFAULT_MODEL
        session = {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": WIRE_RATE},
            "transcription": {"model": model, "language": "en"},
            "turn_detection": None}}}
        return [json.dumps({"type": "session.update", "session": session})]

    def encode_audio(self, offset: int, pcm: bytes) -> str:
        check_audio(offset, pcm)
        if self._resampler is None:
            raise ValueError("openai-realtime: encode_audio before connect_request")
        out = self._resampler.feed(bytes(pcm))
        self.sent_ms += len(pcm) * 1000.0 / BYTES_PER_SECOND
        audio = base64.b64encode(out).decode("ascii")
        return json.dumps({"type": "input_audio_buffer.append", "audio": audio})

    def encode_control(self, kind: str) -> str | None:
        check_control_kind(kind)
        if kind == "keepalive":
            return None  # the protocol has none
        self.commit_marks.append(self.sent_ms)
        self.closing = self.closing or kind == "close_stream"
        return json.dumps({"type": "input_audio_buffer.commit"})

    def decode(self, frame: bytes | str) -> list[Event]:
        if isinstance(frame, bytes):
            raise ProtocolError(f"openai-realtime: a binary frame; every server event is JSON text: {frame!r:.120}")
        data = load_object(frame, "openai-realtime")
        kind = data.get("type")
        if not isinstance(kind, str):
            raise ProtocolError(f"openai-realtime: an event without a string 'type': {frame!r:.120}")
        f = Fields(data, f"openai-realtime {kind}", frame)
        if kind == _PREFIX + "delta":
            self.delta_text += f.str("delta")
            start, end = self._span()
            return [Partial(self.next_segment_id, self.delta_text, start, end)]
        if kind == _PREFIX + "completed":
            return self._completed(f)
        if kind == _PREFIX + "failed":
            error = f.sub("error", f.get("error", None), "error")
            self._answered()
            return [Error(code=str(error.get("code", None) or "transcription_failed"), message=error.str("message", ""),
                          retryable=error.get("type", None) in _RETRYABLE, details=_rest(data))]
        if kind == "error":
            error = f.sub("error", f.get("error", None), "error")
            code = str(error.get("code", None) or error.str("type", "error"))
            if code == _EMPTY_COMMIT:
                self._answered()  # nothing since the last commit: nothing more to come
            return [Error(code=code, message=error.str("message", ""),
                          retryable=code in _RETRYABLE or error.get("type", None) in _RETRYABLE, details=_rest(data))]
        if kind in _INFO_EVENTS:
            return [Info(kind, _rest(data))]
        raise ProtocolError(f"openai-realtime: unknown event type {kind!r}; expected session, input_audio_buffer, "
                            f"{_PREFIX}delta/completed/failed or error events: {frame!r:.120}")

    def closed(self, code: int, reason: str = "") -> Closed:
        return Closed(code, reason)

    def close_events(self, code: int, reason: str = "") -> list[Event]:
        return [self.closed(code, reason)]  # errors come as error events before the close

    # --- internals ------------------------------------------------------------------------
    def _span(self) -> tuple[int, int]:
        """The audio the next answer covers: from the last answered commit to the next commit."""
        end = self.commit_marks[0] if self.commit_marks else self.sent_ms
        return round(self.time_base_ms + self.committed_ms), round(self.time_base_ms + end)

    def _answered(self) -> None:
        """A commit was answered (one answer per commit, in order)."""
        if self.commit_marks:
            self.committed_ms = self.commit_marks.pop(0)
        if self.closing and not self.commit_marks:
            self.stream_finished = True

    def _completed(self, f: Fields) -> list[Event]:
        text = f.str("transcript").strip()
        start, end = self._span()
        self.delta_text = ""
        self._answered()
        if not text:
            return [Info("empty_transcript", {"item_id": f.get("item_id", None), "start_ms": start, "end_ms": end})]
        segment_id = self.next_segment_id
        self.next_segment_id += 1
        return [Final(segment_id, text, start, end)]


class Upsampler:
    """16 kHz to 24 kHz s16le by linear interpolation, streaming. Output sample ``j`` is input
    position ``(2j - 1) / 3`` (silence before the first sample), so ``n`` input samples give
    ``floor(3n / 2)`` output samples however they are chunked, the same as fed at once: audio
    of a whole number of milliseconds is exactly 1.5 times as many samples, none held back."""

    def __init__(self) -> None:
        self.prev = np.zeros(1, dtype=np.float64)  # the last input sample (silence at first)
        self.inputs = 0  # input samples fed so far
        self.outputs = 0  # output samples given so far

    def feed(self, pcm: bytes) -> bytes:
        chunk = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if not len(chunk):
            return b""
        x = np.concatenate([self.prev, chunk])
        base = self.inputs - 1  # input index of x[0]
        self.inputs += len(chunk)
        j = np.arange(self.outputs, (3 * (self.inputs - 1) + 1) // 2 + 1)
        self.outputs += len(j)
        i, frac = (2 * j - 1) // 3 - base, ((2 * j - 1) % 3) / 3.0
        upper = np.minimum(i + 1, len(x) - 1)  # past the end only with weight 0
        out = x[i] * (1.0 - frac) + x[upper] * frac
        self.prev = x[-1:]
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


def _rest(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "type"}
