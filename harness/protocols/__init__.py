"""Sans-I/O codecs: config → connect request, audio/control → frames, frames → events."""

from harness.protocols.base import (
    Codec,
    ConnectRequest,
    HttpRequest,
    ProtocolError,
    SessionCreateError,
    SessionInfo,
    SessionParams,
    StreamTarget,
)
from harness.protocols.registry import get_codec, known_protocols

__all__ = [
    "Codec",
    "ConnectRequest",
    "HttpRequest",
    "ProtocolError",
    "SessionCreateError",
    "SessionInfo",
    "SessionParams",
    "StreamTarget",
    "get_codec",
    "known_protocols",
]
