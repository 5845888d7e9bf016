"""The ``scripted`` engine: a test double for load and integrity tests.

It does not listen to the audio at all. It replays the session's script word by word, aligned to the
bytes received: word ``i`` covers stream bytes ``[i*W, (i+1)*W)`` (``W`` = ``script_word_ms`` * 32)
and is emitted once audio through ``(i+1)*W`` has been taken. Its text is
``script_words[i % len(script_words)]``, so audio taken twice shows up as extra words and lost audio
as missing words: a transcript check can see a byte-accounting bug that a real recognizer would
blur. It is cheap (no model), so it also serves load tests that measure the server, not the ASR.

Segments close after every ``script_segment_words`` words, when the open segment reaches
``max_segment_s``, and at flush. A word still incomplete at flush is not emitted. Word times are
exact and confidences 1.0.
"""

from __future__ import annotations

from .base import (
    BYTES_PER_MS,
    EngineConfig,
    EngineResult,
    EngineWord,
    FinalResult,
    PartialResult,
)
from .validate import check_config, check_pcm


class ScriptedEngine:
    """Replays ``config.script`` aligned to the received byte stream (a test double)."""

    name = "scripted"

    def __init__(self, config: EngineConfig) -> None:
        check_config(config)
        self._words = config.script.split()
        if not self._words:
            raise ValueError("scripted engine needs a non-empty 'script' (whitespace-separated words)")
        if not _positive_int(config.script_word_ms):
            raise ValueError(f"script_word_ms must be a positive integer, got {config.script_word_ms!r}")
        if not _positive_int(config.script_segment_words):
            raise ValueError(
                f"script_segment_words must be a positive integer, got {config.script_segment_words!r}"
            )
        self._word_ms = config.script_word_ms
        self._word_bytes = config.script_word_ms * BYTES_PER_MS
        # A segment closes at whichever comes first: the word count or max_segment_s of audio.
        by_time = int(config.max_segment_s * 1000) // self._word_ms
        self._segment_cap = max(1, min(config.script_segment_words, by_time))
        self._position = config.start_offset  # stream offset of the next byte to arrive
        self._next_word = config.start_offset // self._word_bytes
        self._open: list[EngineWord] = []
        self._closed = False

    def accept(self, pcm: bytes) -> list[EngineResult]:
        self._check_open()
        check_pcm(pcm)
        self._position += len(pcm)
        results: list[EngineResult] = []
        # One result per completed word, so the sequence is identical however the audio is chunked.
        while (self._next_word + 1) * self._word_bytes <= self._position:
            self._open.append(self._word(self._next_word))
            self._next_word += 1
            if len(self._open) >= self._segment_cap:
                results.append(self._close_segment())
            else:
                results.append(self._partial())
        return results

    def flush(self) -> list[EngineResult]:
        self._check_open()
        return [self._close_segment()] if self._open else []

    def close(self) -> None:
        self._closed = True

    def _word(self, index: int) -> EngineWord:
        return EngineWord(
            word=self._words[index % len(self._words)],
            start_ms=index * self._word_ms,
            end_ms=(index + 1) * self._word_ms,
            confidence=1.0,
        )

    def _partial(self) -> PartialResult:
        return PartialResult(
            text=" ".join(w.word for w in self._open),
            start_ms=self._open[0].start_ms,
            end_ms=self._open[-1].end_ms,
        )

    def _close_segment(self) -> FinalResult:
        words, self._open = tuple(self._open), []
        return FinalResult(
            text=" ".join(w.word for w in words),
            start_ms=words[0].start_ms,
            end_ms=words[-1].end_ms,
            words=words,
            boundary_offset=words[-1].end_ms * BYTES_PER_MS,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} engine is closed")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
