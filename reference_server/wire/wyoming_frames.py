"""Wyoming's event framing, sans-I/O (the server's own copy: the server imports nothing of the
harness). One event is a JSON header line (``type``, ``version``, ``data_length``,
``payload_length``; ``data`` may sit inline), then ``data_length`` bytes of JSON data, then
``payload_length`` bytes of payload, as the ``wyoming`` package writes them.

:class:`EventReader` takes bytes in any split and gives whole events; what breaks the framing
raises :class:`FrameError` with the reason, which the adapter sends back as an ``error`` event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

VERSION = "1.5.3"
MAX_HEADER_BYTES = 64 * 1024
MAX_SECTION_BYTES = 16 * 1024 * 1024


class FrameError(ValueError):
    """Bytes that are not a Wyoming event (the message names the part and quotes it)."""


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


def encode(event_type: str, data: dict[str, Any] | None = None, payload: bytes = b"") -> bytes:
    header: dict[str, Any] = {"type": event_type, "version": VERSION}
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body + payload


def _quote(raw: bytes) -> str:
    return repr(raw[:100]) + ("…" if len(raw) > 100 else "")


class EventReader:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.header: dict[str, Any] | None = None
        self.sizes = (0, 0)

    @property
    def at_boundary(self) -> bool:
        return self.header is None and not self.buf

    def feed(self, chunk: bytes) -> list[Event]:
        self.buf += chunk
        out: list[Event] = []
        while True:
            if self.header is None:
                end = self.buf.find(b"\n")
                if end < 0:
                    if len(self.buf) > MAX_HEADER_BYTES:
                        raise FrameError(f"no header line end within {MAX_HEADER_BYTES} bytes: {_quote(bytes(self.buf))}")
                    return out
                line = bytes(self.buf[:end])
                del self.buf[:end + 1]
                if line.strip():
                    self.header, self.sizes = self._header(line)
                continue
            n_data, n_payload = self.sizes
            if len(self.buf) < n_data + n_payload:
                return out
            out.append(self._event(n_data, n_payload))

    @staticmethod
    def _header(line: bytes) -> tuple[dict[str, Any], tuple[int, int]]:
        try:
            header = json.loads(line)
        except (ValueError, RecursionError):
            raise FrameError(f"a header line must be one JSON object: {_quote(line)}") from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str) or not header["type"]:
            raise FrameError(f"a header must be a JSON object with a string 'type': {_quote(line)}")
        if not isinstance(header.get("data", {}), dict):
            raise FrameError(f"header field 'data' must be an object: {_quote(line)}")
        sizes = []
        for key in ("data_length", "payload_length"):
            value = header.get(key) or 0
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SECTION_BYTES:
                raise FrameError(f"header field {key!r} must be an integer in 0..{MAX_SECTION_BYTES}: {_quote(line)}")
            sizes.append(value)
        return header, (sizes[0], sizes[1])

    def _event(self, n_data: int, n_payload: int) -> Event:
        header = self.header
        assert header is not None
        data = dict(header.get("data") or {})
        if n_data:
            raw = bytes(self.buf[:n_data])
            try:
                extra = json.loads(raw)
            except (ValueError, RecursionError):
                raise FrameError(f"{header['type']}: its {n_data} data bytes are not JSON: {_quote(raw)}") from None
            if not isinstance(extra, dict):
                raise FrameError(f"{header['type']}: its data must be a JSON object: {_quote(raw)}")
            data.update(extra)
        payload = bytes(self.buf[n_data:n_data + n_payload])
        del self.buf[:n_data + n_payload]
        self.header, self.sizes = None, (0, 0)
        return Event(header["type"], data, payload)
