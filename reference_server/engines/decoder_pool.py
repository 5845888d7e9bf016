"""A small process-wide pool of ready PocketSphinx decoders.

Building a decoder loads the acoustic model, dictionary and language model: about 0.3 s of CPU and
~90 MB each, and the binding holds the GIL throughout, so every other thread (the event loop too)
stalls meanwhile. The server therefore builds a few at start-up (``prewarm``) and a stream borrows
one for its life and gives it back. A decoder is never shared by two live streams: ``checkout``
hands each out to one borrower at a time.

A decoder carries cepstral-mean state from the audio it last heard; ``checkout`` resets it to the
model's initial value so a stream's transcript does not depend on which decoder it got.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_IDLE = 4


def build_decoder() -> Any:
    """A decoder with the wheel's bundled US English model, logging only fatal errors.

    The flat-lexicon second pass is off: on the committed audio fixtures it did not help (WER
    0.068 with it, 0.054 without), and it made closing an utterance 3-5x slower (80-280 ms
    instead of 15-60 ms for 3-7 s of speech), which is final latency.
    The best-path pass stays on: it gives the word posteriors we report as confidences.
    """
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL", fwdflat=False)


def _reset_stream_state(decoder: Any) -> None:
    """Forget the previous stream's noise statistics.

    PocketSphinx 5 marks ``start_stream`` deprecated as "unnecessary", yet without it a reused
    decoder's posteriors (our confidences) differ from a fresh one's on the same audio.
    """
    start_stream = getattr(decoder, "start_stream", None)
    if start_stream is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            start_stream()


class DecoderPool:
    """Thread-safe checkout/checkin of decoders; keeps at most ``max_idle`` idle ones."""

    def __init__(self, factory: Callable[[], Any] = build_decoder, max_idle: int = DEFAULT_MAX_IDLE):
        if max_idle < 0:
            raise ValueError(f"max_idle must be >= 0, got {max_idle!r}")
        self._factory = factory
        self._max_idle = max_idle
        self._idle: list[tuple[Any, str]] = []  # (decoder, its initial cepstral mean)
        self._out: dict[int, str] = {}  # id of each decoder lent out -> its initial cepstral mean
        self._lock = threading.Lock()
        self.built = 0  # decoders built so far
        self.build_seconds = 0.0  # total time spent building them

    def checkout(self) -> Any:
        """A decoder for one stream's exclusive use, ready for ``start_utt``."""
        with self._lock:
            entry = self._idle.pop() if self._idle else None
        if entry is None:
            entry = self._build()
        decoder, initial_cmn = entry
        _reset_stream_state(decoder)
        decoder.set_cmn(initial_cmn)
        with self._lock:
            self._out[id(decoder)] = initial_cmn
        return decoder

    def checkin(self, decoder: Any) -> None:
        """Give a decoder back (no utterance may be open). Extra ones beyond max_idle are dropped."""
        with self._lock:
            if id(decoder) not in self._out:
                raise ValueError("this decoder was not checked out of this pool (or was returned twice)")
            initial_cmn = self._out.pop(id(decoder))
            if len(self._idle) < self._max_idle:
                self._idle.append((decoder, initial_cmn))

    def prewarm(self, count: int) -> None:
        """Build decoders until ``count`` are idle (capped at max_idle). Call before serving."""
        while True:
            with self._lock:
                if len(self._idle) >= min(count, self._max_idle):
                    return
            entry = self._build()
            with self._lock:
                self._idle.append(entry)

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def in_use(self) -> int:
        with self._lock:
            return len(self._out)

    def clear(self) -> None:
        """Drop every idle decoder (frees their memory)."""
        with self._lock:
            self._idle.clear()

    def _build(self) -> tuple[Any, str]:
        started = time.perf_counter()
        decoder = self._factory()
        elapsed = time.perf_counter() - started
        with self._lock:
            self.built += 1
            self.build_seconds += elapsed
        return decoder, decoder.get_cmn()


_default_pool: DecoderPool | None = None
_default_lock = threading.Lock()


def default_pool() -> DecoderPool:
    """The process-wide pool every pocketsphinx engine uses unless given another."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = DecoderPool()
        return _default_pool
