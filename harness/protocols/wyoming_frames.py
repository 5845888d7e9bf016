"""Wyoming's framing, sans-I/O: one event is a JSON header line, then optional data, then an
optional payload (the rhasspy/OHF-voice ``wyoming`` package's ``async_write_event``).

On the wire::

    {"type": "audio-chunk", "version": "1.5.3", "data_length": 42, "payload_length": 3200}\\n
    {"rate": 16000, "width": 2, "channels": 1}          <- data_length bytes of JSON (an object)
    <3200 bytes of PCM>                                  <- payload_length bytes

``data`` may also sit in the header itself (``"data": {...}``); both are merged, the separate data
block winning, as the reference implementation reads them. A stream (TCP) carries events back to
back; over a WebSocket each message is one whole event. :class:`FrameParser` takes bytes as they
come and returns whole events; anything that breaks the framing raises :class:`WyomingFrameError`
naming what was wrong (never a silent skip, never a hang on a header without its newline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

VERSION = "1.5.3"  # the protocol version written into every header (readers ignore it)
MAX_HEADER_BYTES = 64 * 1024  # a header line longer than this is not Wyoming
MAX_SECTION_BYTES = 16 * 1024 * 1024  # data or payload: 16 MiB is minutes of audio in one event


class WyomingFrameError(ValueError):
    """Bytes that are not a Wyoming event; the message says which part is wrong and quotes it."""


@dataclass(frozen=True)
class WyomingEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes | None = None


def encode_event(event: WyomingEvent) -> bytes:
    """The bytes of one event: header line, data (when not empty), payload (when not empty)."""
    if not isinstance(event.type, str) or not event.type:
        raise ValueError(f"a Wyoming event needs a non-empty string type, got {event.type!r}")
    header: dict[str, Any] = {"type": event.type, "version": VERSION}
    data = json.dumps(event.data, ensure_ascii=False).encode("utf-8") if event.data else b""
    if data:
        header["data_length"] = len(data)
    payload = bytes(event.payload or b"")
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n" + data + payload


def _excerpt(raw: bytes, limit: int = 120) -> str:
    return repr(raw[:limit]) + ("…" if len(raw) > limit else "")


def _length(header: dict[str, Any], key: str, line: bytes) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SECTION_BYTES:
        raise WyomingFrameError(f"header field {key!r} must be an integer in 0..{MAX_SECTION_BYTES}, "
                                f"got {value!r:.40}: {_excerpt(line)}")
    return value


class FrameParser:
    """Bytes in (any split), whole events out, in order."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._header: dict[str, Any] | None = None  # a header read, its data/payload not yet whole
        self._line = b""
        self._need = 0

    @property
    def at_boundary(self) -> bool:
        """No part of an event is held: everything fed so far came out as whole events."""
        return self._header is None and not self._buf

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[WyomingEvent]:
        self._buf += chunk
        out: list[WyomingEvent] = []
        while True:
            if self._header is None:
                newline = self._buf.find(b"\n")
                if newline < 0:
                    if len(self._buf) > MAX_HEADER_BYTES:
                        raise WyomingFrameError(f"no newline within {MAX_HEADER_BYTES} bytes: not a Wyoming header "
                                                f"line: {_excerpt(bytes(self._buf))}")
                    return out
                line = bytes(self._buf[:newline])
                del self._buf[:newline + 1]
                if not line.strip():
                    continue  # a blank line between events carries nothing
                self._header, self._line = self._parse_header(line), line
                self._need = (_length(self._header, "data_length", line)
                              + _length(self._header, "payload_length", line))
            if len(self._buf) < self._need:
                return out
            out.append(self._finish())

    def _parse_header(self, line: bytes) -> dict[str, Any]:
        try:
            header = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise WyomingFrameError(f"header line is not JSON ({exc}): {_excerpt(line)}") from None
        if not isinstance(header, dict):
            raise WyomingFrameError(f"header line must be a JSON object, got {type(header).__name__}: {_excerpt(line)}")
        if not isinstance(header.get("type"), str) or not header["type"]:
            raise WyomingFrameError(f"header has no string 'type': {_excerpt(line)}")
        if "data" in header and not isinstance(header["data"], dict):
            raise WyomingFrameError(f"header field 'data' must be an object: {_excerpt(line)}")
        return header

    def _finish(self) -> WyomingEvent:
        header, line = self._header, self._line
        assert header is not None
        n_data = _length(header, "data_length", line)
        n_payload = _length(header, "payload_length", line)
        data = dict(header.get("data") or {})
        if n_data:
            raw = bytes(self._buf[:n_data])
            try:
                extra = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise WyomingFrameError(f"{header['type']}: the {n_data} data bytes are not JSON ({exc}): "
                                        f"{_excerpt(raw)}") from None
            if not isinstance(extra, dict):
                raise WyomingFrameError(f"{header['type']}: the data block must be a JSON object, got "
                                        f"{type(extra).__name__}: {_excerpt(raw)}")
            data.update(extra)
        payload = bytes(self._buf[n_data:n_data + n_payload]) if n_payload else None
        del self._buf[:n_data + n_payload]
        self._header, self._line, self._need = None, b"", 0
        return WyomingEvent(header["type"], data, payload)
