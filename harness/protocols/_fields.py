"""Strict field readers for decoding JSON frames: each raises ProtocolError naming the field,
the expected type and the frame, so a malformed message never escapes as a KeyError/TypeError."""

from __future__ import annotations

import json
import math
from typing import Any

from harness.protocols.base import ProtocolError

_MISSING = object()


def excerpt(frame: bytes | str, limit: int = 120) -> str:
    text = repr(frame[:limit])
    return text + ("…" if len(frame) > limit else "")


def load_object(frame: bytes | str, protocol: str) -> dict[str, Any]:
    """Parse a text frame into a JSON object, or raise ProtocolError saying why not."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"{protocol}: unexpected binary frame of {len(frame)} bytes from the server: {excerpt(bytes(frame))}")
    if not isinstance(frame, str):
        raise ProtocolError(f"{protocol}: a frame must be str or bytes, got {type(frame).__name__}")
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{protocol}: text frame is not valid JSON ({exc}): {excerpt(frame)}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{protocol}: message must be a JSON object, got {type(data).__name__}: {excerpt(frame)}")
    return data


class Fields:
    """Typed access to one message's fields with errors that name the message type."""

    def __init__(self, data: dict[str, Any], what: str, frame: bytes | str) -> None:
        self.data, self.what, self.frame = data, what, frame

    def _fail(self, key: str, expected: str, value: Any) -> ProtocolError:
        if value is _MISSING:
            return ProtocolError(f"{self.what}: missing field {key!r} ({expected}): {excerpt(self.frame)}")
        return ProtocolError(f"{self.what}: field {key!r} must be {expected}, got {value!r:.80}: {excerpt(self.frame)}")

    def get(self, key: str, default: Any = _MISSING) -> Any:
        value = self.data.get(key, _MISSING)
        return default if value is _MISSING and default is not _MISSING else value

    def int(self, key: str, default: Any = _MISSING, minimum: int | None = 0) -> Any:
        value = self.get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise self._fail(key, "an integer" + (f" >= {minimum}" if minimum is not None else ""), value)
        return value

    def number(self, key: str, default: Any = _MISSING, minimum: float | None = None) -> Any:
        value = self.get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._fail(key, "a finite number", value)
        if minimum is not None and value < minimum:
            raise self._fail(key, f"a number >= {minimum}", value)
        return value

    def ms(self, key: str) -> int:
        """A time in milliseconds: integers on the wire, floats rounded."""
        return round(self.number(key, minimum=0))

    def str(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def dict(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, dict):
            raise self._fail(key, "an object", value)
        return value

    def list(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list):
            raise self._fail(key, "a list", value)
        return value

    def sub(self, key: str, value: Any, what: str) -> Fields:
        if not isinstance(value, dict):
            raise self._fail(key, "an object", value)
        return Fields(value, f"{self.what}: {what}", self.frame)
