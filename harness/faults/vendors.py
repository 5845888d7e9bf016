"""What the vendors' wires look like to the fault proxy: which messages are results, finals,
finalize requests and audio, and what each vendor sends when it fails.

This is data about public wire protocols (Deepgram live, AssemblyAI Universal Streaming v3,
Speechmatics real-time v2, OpenAI Realtime transcription, and the reference v1 stream), so that
one rule works on every protocol: "drop the 2nd final" drops a Deepgram ``Results`` with
``is_final``, an AssemblyAI ``Turn`` with ``end_of_turn``, a Speechmatics ``AddTranscript``, an
OpenAI ``...input_audio_transcription.completed`` or a reference ``final``. No protocol names
appear in rules or checks: they ask ``is_final(obj)``.

The presets are what each vendor documents for its failures: the text frame it sends (if any),
then the close code and reason; and the HTTP answer of a refused handshake.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

# The stream endpoint of each protocol on the reference server (``harness serve --faults`` prints
# one proxy URL per protocol; the vendors' own paths, so an SDK's base URL is all that changes).
VENDOR_PATHS: dict[str, str] = {
    "reference": "/v1/stream",
    "deepgram": "/v1/listen",
    "openai": "/v1/realtime",
    "assemblyai": "/v3/ws",
    "speechmatics": "/v2",
}

# --- reading messages ---------------------------------------------------------------------------
OPENAI_FINAL = "conversation.item.input_audio_transcription.completed"
OPENAI_PARTIAL = "conversation.item.input_audio_transcription.delta"
OPENAI_APPEND = "input_audio_buffer.append"


def message_kind(obj: Any) -> str | None:
    """A JSON message's name: its ``type``, or Speechmatics' ``message`` (``AddTranscript`` …)."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("type"), str):
        return obj["type"]
    name = obj.get("message")
    if isinstance(name, str) and name.isidentifier():
        return name
    return None


def is_final(obj: dict[str, Any] | None) -> bool:
    """A final (immutable) result of any of the protocols."""
    kind = message_kind(obj)
    if kind is None:
        return False
    assert obj is not None
    return ((kind == "Results" and obj.get("is_final") is True)
            or (kind == "Turn" and obj.get("end_of_turn") is True)
            or kind in ("AddTranscript", OPENAI_FINAL, "final"))


def is_result(obj: dict[str, Any] | None) -> bool:
    """Any transcript result, interim or final."""
    kind = message_kind(obj)
    return kind in ("Results", "Turn", "AddTranscript", "AddPartialTranscript", OPENAI_FINAL, OPENAI_PARTIAL,
                    "final", "partial")


FINALIZE_KINDS = frozenset({"finalize", "Finalize", "CloseStream", "Terminate", "ForceEndpoint", "EndOfStream",
                            "input_audio_buffer.commit"})


def is_finalize(obj: dict[str, Any] | None) -> bool:
    """A client's request to flush or end the audio, in any of the protocols."""
    return message_kind(obj) in FINALIZE_KINDS


def audio_bytes(data: str | bytes, obj: dict[str, Any] | None) -> int:
    """Audio bytes a client message carries: a binary frame's length, or OpenAI's base64 ``audio``."""
    if isinstance(data, bytes):
        return len(data)
    if message_kind(obj) == OPENAI_APPEND and isinstance(obj, dict) and isinstance(obj.get("audio"), str):
        try:
            return len(base64.b64decode(obj["audio"], validate=False))
        except ValueError:
            return 0
    return 0


# --- the audio rate, for "after N ms of audio" --------------------------------------------------
_WIDTH = {"linear16": 2, "pcm_s16le": 2, "pcm16": 2, "audio/pcm": 2, "mulaw": 1, "alaw": 1, "pcm_mulaw": 1,
          "pcm_alaw": 1, "audio/pcmu": 1, "audio/pcma": 1, "pcm_f32le": 4}
_DEFAULT_RATE = {"/v1/realtime": 24000}  # OpenAI Realtime's pcm16 is 24 kHz unless the session says


def bytes_per_ms_of_query(path: str, query: dict[str, str]) -> int:
    """From the handshake: ``sample_rate`` and ``encoding`` query parameters (Deepgram, AssemblyAI),
    or the protocol's default rate; 16 kHz 16-bit otherwise."""
    rate = query.get("sample_rate", "")
    hz = int(rate) if rate.isdigit() and int(rate) > 0 else _DEFAULT_RATE.get(path, 16000)
    return max(1, hz * _WIDTH.get(query.get("encoding", ""), 2) // 1000)


def bytes_per_ms_of_message(obj: dict[str, Any] | None) -> int | None:
    """From a client's set-up message, when it names the audio format: Speechmatics'
    ``StartRecognition.audio_format``, OpenAI's ``session.update`` input format."""
    kind = message_kind(obj)
    if obj is None or kind not in ("StartRecognition", "session.update", "transcription_session.update"):
        return None
    if kind == "StartRecognition":
        fmt = obj.get("audio_format") or {}
        rate, encoding = fmt.get("sample_rate"), fmt.get("encoding", "pcm_s16le")
    else:
        session = obj.get("session") or {}
        fmt = ((session.get("audio") or {}).get("input") or {}).get("format") or {}
        rate, encoding = fmt.get("rate", 24000), fmt.get("type", "audio/pcm")
    if not fmt or not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0 or encoding not in _WIDTH:
        return None
    return max(1, rate * _WIDTH[encoding] // 1000)


# --- what vendors send when they fail ----------------------------------------------------------
@dataclass(frozen=True)
class ErrorPreset:
    """Accept, then (optionally) a text frame, then close ``code`` with ``reason``."""

    vendor: str
    code: int
    reason: str
    message: dict[str, Any] | None = None
    doc: str = ""

    def frames(self) -> list[str]:
        return [] if self.message is None else [json.dumps(self.message, separators=(",", ":"))]


_SPEECHMATICS_QUOTA = "Concurrent session quota exceeded"
_SPEECHMATICS_IDLE = "Session idle for too long"
ERROR_PRESETS: dict[str, ErrorPreset] = {
    "deepgram-net-0000": ErrorPreset(
        "deepgram", 1011, "NET-0000: The service has not transmitted a Text frame to the client within the timeout "
        "window.", None, "Deepgram's internal error: close 1011, the payload in the close frame only"),
    "deepgram-net-0001": ErrorPreset(
        "deepgram", 1011, "NET-0001: The service has not received a Binary or Text frame from the client within the "
        "timeout window.", None, "Deepgram's client timeout (no audio, no KeepAlive for 10 s)"),
    "assemblyai-3005": ErrorPreset(
        "assemblyai", 3005, "Session Cancelled: An error occurred",
        {"type": "Error", "error_code": 3005, "error": "Session Cancelled: An error occurred"},
        "AssemblyAI v3's unknown server error: an Error frame, then close 3005"),
    "assemblyai-4029": ErrorPreset(
        "assemblyai", 4029, "Client sent audio too fast",
        {"type": "Error", "error_code": 4029, "error": "Client sent audio too fast"},
        "AssemblyAI's rate limit on audio faster than real time"),
    "speechmatics-quota-exceeded": ErrorPreset(
        "speechmatics", 1008, "quota_exceeded",
        {"message": "Error", "type": "quota_exceeded", "reason": _SPEECHMATICS_QUOTA},
        "Speechmatics' Error message with type quota_exceeded, then close 1008"),
    "speechmatics-idle-timeout": ErrorPreset(
        "speechmatics", 1008, "idle_timeout",
        {"message": "Error", "type": "idle_timeout", "reason": _SPEECHMATICS_IDLE},
        "Speechmatics' Error message with type idle_timeout, then close 1008"),
    "openai-server-error": ErrorPreset(
        "openai", 1011, "server_error",
        {"type": "error", "event_id": "event_fault_proxy",
         "error": {"type": "server_error", "code": None, "param": None, "event_id": None,
                   "message": "The server had an error while processing your request."}},
        "OpenAI Realtime's error event of type server_error, then close 1011"),
}


@dataclass(frozen=True)
class RefusalPreset:
    """A refused handshake: ``status``, the vendor's body and headers (``Retry-After`` …)."""

    vendor: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _dg(status: int, code: str, msg: str, **headers: str) -> RefusalPreset:
    return RefusalPreset("deepgram", status, {"err_code": code, "err_msg": msg, "request_id": "fault-proxy"},
                         {"dg-error": msg, **headers})


REFUSAL_PRESETS: dict[str, RefusalPreset] = {
    "deepgram-401": _dg(401, "INVALID_AUTH", "Invalid credentials."),
    "deepgram-429": _dg(429, "TOO_MANY_REQUESTS", "Too many requests. Please try again later.", **{"Retry-After": "2"}),
    "deepgram-503": _dg(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable.", **{"Retry-After": "1"}),
    "assemblyai-401": RefusalPreset("assemblyai", 401, {"error": "Unauthorized Connection: Missing Authorization header"}),
    "assemblyai-429": RefusalPreset("assemblyai", 429, {"error": "Too many concurrent sessions"}, {"Retry-After": "2"}),
    "speechmatics-401": RefusalPreset("speechmatics", 401, {"message": "Error", "type": "not_authorised",
                                                            "reason": "Invalid API key"}),
    "speechmatics-429": RefusalPreset("speechmatics", 429, {"message": "Error", "type": "quota_exceeded",
                                                            "reason": _SPEECHMATICS_QUOTA}, {"Retry-After": "2"}),
    "openai-401": RefusalPreset("openai", 401, {"error": {"type": "invalid_request_error", "code": "invalid_api_key",
                                                          "message": "Incorrect API key provided.", "param": None}}),
    "openai-429": RefusalPreset("openai", 429, {"error": {"type": "rate_limit_exceeded", "code": "rate_limit_exceeded",
                                                          "message": "Rate limit reached.", "param": None}},
                                {"Retry-After": "2"}),
    "http-503": RefusalPreset("any", 503, {"error": "service unavailable"}, {"Retry-After": "1"}),
}


__all__ = ["VENDOR_PATHS", "bytes_per_ms_of_message", "bytes_per_ms_of_query", "ERROR_PRESETS", "ErrorPreset", "REFUSAL_PRESETS", "RefusalPreset", "audio_bytes", "is_final",
           "is_finalize", "is_result", "message_kind"]
