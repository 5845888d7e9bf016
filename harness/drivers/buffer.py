"""The client's audio buffer: what it has read from its source and may still have to resend.

A real client reads a live source (a microphone) once. Whatever it has read but the server has not
made durable, it must keep, because after a crash or a dropped connection the server asks for it
again (``ready.committed_offset``, ``audio_gap.expected_offset``). So the buffer holds the stream
bytes ``[start, produced)``: ``start`` rises with the durable offset, ``produced`` with reading.
It is bounded: when ``produced - start`` would pass ``max_bytes`` the client must wait for the
server to catch up instead of reading on. The bytes held are a real copy (a bytearray whose front
is trimmed as acks arrive), so its size is the client's true memory for unacked audio.
"""

from __future__ import annotations

from harness.errors import BackendError


class ResendUnavailable(BackendError):
    """The server asked for audio the client no longer holds (below the durable offset it acked)."""


class AudioBuffer:
    def __init__(self, source: bytes, max_bytes: int, keep: bool = True) -> None:
        """``keep=False`` for protocols without offsets: nothing can be asked for again, so sent
        audio is dropped at once."""
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self._source = memoryview(source)
        self.max_bytes = max_bytes
        self.keep = keep
        self.start = 0  # lowest stream offset still held
        self.produced = 0  # stream offset up to which the source has been read
        self._held = bytearray()
        self.peak_bytes = 0

    @property
    def total(self) -> int:
        return len(self._source)

    @property
    def held_bytes(self) -> int:
        return len(self._held)

    def room_for(self, offset: int, size: int) -> bool:
        """Whether reading up to ``offset + size`` stays within the bound (resends always fit)."""
        end = min(offset + size, self.total)
        if end <= self.produced or not self.keep:
            return True
        return end - self.start <= self.max_bytes

    def take(self, offset: int, size: int) -> bytes:
        """The bytes ``[offset, offset+size)``: held ones for a resend, fresh ones from the source
        past ``produced``. Raises ResendUnavailable below ``start`` and ValueError past ``produced``
        (the stream has no holes: a client reads its source in order)."""
        if offset < self.start:
            raise ResendUnavailable(
                f"offset {offset} was already released (client holds {self.start}..{self.produced}); "
                "the server acked it as durable earlier"
            )
        if offset > self.produced:
            raise ValueError(f"offset {offset} is past what was read from the source ({self.produced})")
        end = min(offset + size, self.total)
        if end > self.produced:
            fresh = self._source[self.produced : end]
            if self.keep:
                self._held += fresh
            self.produced = end
            if not self.keep:
                self.start = self.produced
            self.peak_bytes = max(self.peak_bytes, len(self._held))
        if not self.keep:
            return bytes(self._source[offset:end])
        return bytes(self._held[offset - self.start : end - self.start])

    def release(self, durable: int) -> None:
        """The server made ``[0, durable)`` durable: those bytes are never needed again."""
        new_start = min(max(durable, self.start), self.produced)
        if new_start > self.start and self.keep:
            del self._held[: new_start - self.start]
        self.start = max(self.start, new_start)
