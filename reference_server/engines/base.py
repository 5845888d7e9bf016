"""The engine interface: what the stream layer needs from any ASR engine.

An engine is synchronous and owns one stream's decoding state; the stream layer calls it from a
worker thread (never on the event loop) and never from two threads at once. Times are stream
milliseconds (byte offset / 32 at 16 kHz s16le). Segment ids are assigned by the session layer,
not the engine: an engine only says "the open segment now reads X" or "this segment is final".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

BYTES_PER_MS = 32  # 16 kHz * 2 bytes


@dataclass(frozen=True)
class EngineWord:
    word: str
    start_ms: int
    end_ms: int
    confidence: float


@dataclass(frozen=True)
class PartialResult:
    """The open segment's current hypothesis (may change)."""

    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class FinalResult:
    """A closed segment. ``boundary_offset`` is the stream byte offset through which all audio is
    accounted for by this and earlier finals: the next segment starts at or after it, and it is
    what the durable offset advances to once this final is persisted."""

    text: str
    start_ms: int
    end_ms: int
    words: tuple[EngineWord, ...] = field(default_factory=tuple)
    boundary_offset: int = 0


EngineResult = PartialResult | FinalResult


@dataclass(frozen=True)
class EngineConfig:
    sample_rate: int = 16000
    start_offset: int = 0  # stream byte offset of the first byte this engine will see (resume)
    max_segment_s: float = 15.0  # force a final at least this often
    script: str = ""  # scripted engine only
    script_word_ms: int = 300  # scripted engine only
    script_segment_words: int = 5  # scripted engine only


class Engine(Protocol):
    name: str

    def accept(self, pcm: bytes) -> list[EngineResult]:
        """Take the next audio (continuing the stream, even length); return new results in order."""

    def flush(self) -> list[EngineResult]:
        """End of audio: close the open segment. Returns the last final(s) (none if no speech)."""

    def close(self) -> None:
        """Release resources. Safe to call twice."""
