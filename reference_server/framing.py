"""The audio frame of the v1 stream and the offset rules against ``received_offset`` (pure)."""

from __future__ import annotations

from dataclasses import dataclass

HEADER_BYTES = 8  # little-endian unsigned byte offset


class FrameError(ValueError):
    """A binary frame the stream cannot take; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_frame(frame: bytes, max_frame_bytes: int) -> tuple[int, bytes]:
    """(offset, payload), or FrameError naming what is wrong with the frame."""
    if len(frame) < HEADER_BYTES:
        raise FrameError("bad_frame", f"audio frame of {len(frame)} bytes is shorter than the 8-byte offset header")
    payload = frame[HEADER_BYTES:]
    if len(payload) > max_frame_bytes:
        raise FrameError("frame_too_large",
                         f"audio payload of {len(payload)} bytes exceeds max_frame_bytes={max_frame_bytes}")
    if len(payload) % 2:
        raise FrameError("bad_frame", f"audio payload of {len(payload)} bytes is odd: 16-bit samples need an even length")
    offset = int.from_bytes(frame[:HEADER_BYTES], "little")
    if offset % 2:
        raise FrameError("bad_frame", f"offset {offset} is odd: audio starts on a whole 16-bit sample")
    return offset, payload


@dataclass(frozen=True)
class Take:
    """What the offset rules decide for a frame: ``kind`` is duplicate, tail or gap; ``data`` is
    the part taken (empty unless tail)."""

    kind: str
    data: bytes = b""


def take(received_offset: int, offset: int, payload: bytes) -> Take:
    end = offset + len(payload)
    if end <= received_offset:
        return Take("duplicate")
    if offset <= received_offset:
        return Take("tail", payload[received_offset - offset:])
    return Take("gap")
