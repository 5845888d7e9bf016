"""The ``pocketsphinx`` engine: real streaming ASR with the PocketSphinx 5 wheel's US English model.

Audio goes through two PocketSphinx ``Endpointer``s (WebRTC-style voice activity detection with a
smoothing window) in whole 30 ms frames; only the speech they pass reaches the decoder. A short
one (``START_WINDOW_S``) decides where speech starts, so decoding (and the first partial) begins
about 0.24 s after the speech onset, not the 0.52 s the long window takes; the long one
(``ENDPOINT_WINDOW_S``) decides where it ends, so a short pause inside a sentence does not split
it. A burst the long one never confirms ends when the short one hears silence again. While speech
flows, the decoder's running hypothesis is reported as a partial every ``PARTIAL_EVERY_MS`` of
speech audio (sooner, every ``PARTIAL_RETRY_MS``, while it has no word yet). A pause of about
``ENDPOINT_WINDOW_S`` ends the utterance: the decoder's best-path pass gives the final words with
their times (10 ms frames) and posterior probabilities as confidences. A segment is also closed
once it holds ``max_segment_s`` of audio, and at flush.

Because the audio is cut into fixed frames before anything else sees it, the results do not depend
on how the caller chunked the stream: any even-length chunks give the same partials and finals.

Byte accounting: the endpointers only decide; the decoder is fed the raw stream, bytes
``[start, cursor)`` of each speech region exactly, where ``start`` is ``SPEECH_LEAD_S`` before the
decided speech start (never before the previous boundary). A segment ended by a pause reaches on
to the frame where the endpointer decided (the pause it listened to; capped at ``max_segment_s``),
and ``boundary_offset`` is that end; a forced or flushed segment ends at ``cursor``. The next
segment starts at or after it. Other audio between speech regions belongs to no segment. Speech
too short for the start window to decide is never decoded (it cannot be told from a click).
Streams need about 0.7 s of silence between sentences to split them.
"""

from __future__ import annotations

import re
from typing import Any

from .base import (
    BYTES_PER_MS,
    EngineConfig,
    EngineResult,
    EngineWord,
    FinalResult,
    PartialResult,
)
from .decoder_pool import DecoderPool, default_pool
from .validate import check_config, check_pcm

ENDPOINT_WINDOW_S = 0.6  # ~0.55 s of non-speech ends a segment
# ~0.22 s of speech starts one (8 frames). The 0.6 s window alone starts 0.52 s after the onset,
# which put the first partial past 0.5 s before any decoding; 0.3 s left first-partial p95 at about
# 570 ms on a quiet machine, 0.24 s about 450 ms with the same WER (scripts/bench_first_partial.py).
START_WINDOW_S = 0.24
# Decoding starts this much before where the endpointers put the speech start (never before the
# previous segment's end): the acoustic model wants a little silence before the first word, or it
# squeezes that word and misjudges it.
SPEECH_LEAD_S = 0.15
ENDPOINT_RATIO = 0.9  # fraction of the window that must agree to switch speech <-> silence
PARTIAL_EVERY_MS = 300  # partial cadence, in speech audio fed to the decoder
# When a partial is due but the decoder has no word yet (the start of a segment), ask again after
# this much more speech instead of a whole cadence later: the first partial comes sooner, and the
# finals are not touched (this only reads the running hypothesis).
PARTIAL_RETRY_MS = 90
RAW_SLACK_S = 0.5  # raw audio kept beyond the endpointer's window, for where its speech starts
# The decoder explains long steady noise as one very long "word"; no spoken word is this long.
MAX_WORD_MS = 1500

_ALTERNATE = re.compile(r"\(\d+\)$")  # pronunciation variants: "to(2)" is "to"


def clean_word(token: str) -> str | None:
    """The spoken word for a decoder token, or None for silence and filler tokens.

    Fillers are ``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``/``[BREATH]``-style noise words and
    ``++GARBAGE++`` markers; alternates like ``read(2)`` become ``read``.
    """
    token = token.strip()
    if not token or token[0] in "<[+" or token.startswith("++"):
        return None
    word = _ALTERNATE.sub("", token)
    return word or None


class PocketSphinxEngine:
    """One stream's decoding state around a decoder borrowed from a ``DecoderPool``."""

    name = "pocketsphinx"

    def __init__(self, config: EngineConfig, pool: DecoderPool | None = None) -> None:
        check_config(config)
        from pocketsphinx import Endpointer, Vad  # imported here: the scripted engine needs no model

        self._endpointer_type = Endpointer
        self._vad_mode = Vad.LOOSE
        self._pool = pool if pool is not None else default_pool()
        self._decoder: Any = self._pool.checkout()
        self._frame_ms = 1000.0 / float(self._decoder.config["frate"])
        # Whole samples, so a forced split never cuts one in half.
        self._max_segment_bytes = max(2, int(config.max_segment_s * config.sample_rate) * 2)
        self._partial_bytes = PARTIAL_EVERY_MS * BYTES_PER_MS
        self._received = config.start_offset  # stream offset of the next byte to arrive
        self._pending = bytearray()  # received bytes not yet a whole endpointer frame
        # The endpointer is a delay line: it hands speech back a whole window late. The decoder is
        # fed from this copy of the recent raw audio instead, as soon as the endpointer has said
        # "speech", so partials are not a window behind the stream.
        self._raw = bytearray()
        self._raw_base = config.start_offset  # stream offset of self._raw[0]
        self._raw_keep = int((max(ENDPOINT_WINDOW_S, START_WINDOW_S) + RAW_SLACK_S) * config.sample_rate) * 2
        self._speaking = False  # a speech region is being fed to the decoder
        self._confirmed = False  # ... and the long endpointer has said speech in it
        self._in_utt = False
        self._utt_start = 0  # stream offset where the open segment's audio starts
        self._cursor = config.start_offset  # stream offset of the end of audio fed to the decoder
        self._since_partial = 0
        self._last_boundary = config.start_offset
        self._frame_end = config.start_offset
        self._new_endpointer()

    # -- Engine interface --------------------------------------------------------------------

    def accept(self, pcm: bytes) -> list[EngineResult]:
        self._check_open()
        check_pcm(pcm)
        self._received += len(pcm)
        self._pending += pcm
        self._raw += pcm
        results: list[EngineResult] = []
        frame_bytes = self._frame_bytes
        taken = 0
        while len(self._pending) - taken >= frame_bytes:
            # Stream offset just past this frame: where a pause-ended segment is decided.
            self._frame_end = self._received - len(self._pending) + taken + frame_bytes
            self._process_frame(bytes(self._pending[taken : taken + frame_bytes]), results)
            taken += frame_bytes
        del self._pending[:taken]
        # Keep what a speech start can reach back to (a window, with slack), and what is not fed yet.
        drop = min(len(self._raw) - self._raw_keep, (self._cursor if self._speaking else self._frame_end) - self._raw_base)
        if drop > 0:
            drop -= drop % 2
            del self._raw[:drop]
            self._raw_base += drop
        return results

    def flush(self) -> list[EngineResult]:
        self._check_open()
        results: list[EngineResult] = []
        tail = bytes(self._pending)
        self._pending.clear()
        if self._speaking:
            # Everything up to the last whole frame is fed already; the tail is the rest of the speech.
            self._feed_raw(self._received, results)
        self._speaking = False
        # A partial now would be stale at once: only finals come out of a flush.
        results = [r for r in results if isinstance(r, FinalResult)]
        results.extend(self._end_segment())
        # The stream may go on after a flush: start afresh at the current offset.
        self._new_endpointer()
        return results

    def close(self) -> None:
        if self._decoder is None:
            return
        decoder, self._decoder = self._decoder, None
        if self._in_utt:
            decoder.end_utt()
            self._in_utt = False
        self._pool.checkin(decoder)

    # -- internals ---------------------------------------------------------------------------

    def _new_endpointer(self) -> None:
        self._endpointer, self._starter = (
            self._endpointer_type(window=window, ratio=ENDPOINT_RATIO, vad_mode=self._vad_mode, sample_rate=16000)
            for window in (ENDPOINT_WINDOW_S, START_WINDOW_S)
        )
        self._frame_bytes: int = self._endpointer.frame_bytes
        self._endpointer_base = self._received  # stream offset of the endpointer's time zero

    def _process_frame(self, frame: bytes, results: list[EngineResult]) -> None:
        # Only the decisions are used: the audio the endpointers hand back is a window late.
        endpointer, starter = self._endpointer, self._starter
        was_in_speech = endpointer.in_speech
        endpointer.process(frame)
        starter.process(frame)
        if not self._speaking:
            deciders = [e for e in (starter, endpointer) if e.in_speech]
            if not deciders:
                return
            start_s = min(e.speech_start for e in deciders) - SPEECH_LEAD_S
            start = self._endpointer_base + max(0, round(start_s * 16000)) * 2
            self._cursor = max(start, self._last_boundary, self._raw_base)
            self._speaking, self._confirmed = True, False
        self._feed_raw(self._frame_end, results)
        if endpointer.in_speech:
            self._confirmed = True
        elif was_in_speech or (not self._confirmed and not starter.in_speech):
            # The long endpointer heard the pause out; or a burst it never confirmed is over.
            self._speaking = False
            results.extend(self._end_segment(closed_at=self._frame_end))

    def _feed_raw(self, end: int, results: list[EngineResult]) -> None:
        """Feed the decoder the raw stream audio from ``self._cursor`` to ``end``."""
        if end > self._cursor:
            self._feed(bytes(self._raw[self._cursor - self._raw_base : end - self._raw_base]), results)

    def _feed(self, speech: bytes, results: list[EngineResult]) -> None:
        """Decode contiguous speech audio that starts at ``self._cursor``."""
        while speech:
            if not self._in_utt:
                self._decoder.start_utt()
                self._in_utt = True
                self._utt_start = self._cursor
                self._since_partial = 0
            room = self._max_segment_bytes - (self._cursor - self._utt_start)
            chunk, speech = speech[:room], speech[room:]
            self._decoder.process_raw(chunk)
            self._cursor += len(chunk)
            self._since_partial += len(chunk)
            if self._cursor - self._utt_start >= self._max_segment_bytes:
                results.extend(self._end_segment())  # forced: the segment is at max_segment_s
            elif self._since_partial >= self._partial_bytes:
                partial = self._partial()
                if partial is not None:
                    self._since_partial = 0
                    results.append(partial)
                else:  # no word yet: try again soon
                    self._since_partial = self._partial_bytes - PARTIAL_RETRY_MS * BYTES_PER_MS

    def _partial(self) -> PartialResult | None:
        # From the word segmentation rather than hyp(), so the noise filter applies to partials too.
        words = self._words()
        if not words:
            return None
        return PartialResult(
            text=" ".join(w.word for w in words),
            start_ms=self._utt_start // BYTES_PER_MS,
            end_ms=self._cursor // BYTES_PER_MS,
        )

    def _end_segment(self, closed_at: int | None = None) -> list[EngineResult]:
        """Close the open segment. ``closed_at`` is where a pause ended it: the segment then
        spans the pause the endpointer listened to before deciding, so its ``end_ms`` is the
        moment the engine knew the segment was over (what final latency is measured from), and
        the durable offset covers that silence too. Word times stay exact."""
        if not self._in_utt:
            return []
        self._decoder.end_utt()
        self._in_utt = False
        # Never longer than max_segment_s, pause included: the protocol promises a final at least that often.
        end = max(self._cursor, min(closed_at or 0, self._utt_start + self._max_segment_bytes))
        self._last_boundary = end
        words = self._words()
        if not words:
            return []  # silence or noise: an empty final is never emitted
        return [
            FinalResult(
                text=" ".join(w.word for w in words),
                start_ms=self._utt_start // BYTES_PER_MS,
                end_ms=end // BYTES_PER_MS,
                words=words,
                boundary_offset=end,
            )
        ]

    def _words(self) -> tuple[EngineWord, ...]:
        seg_start_ms = self._utt_start // BYTES_PER_MS
        seg_end_ms = self._cursor // BYTES_PER_MS
        words: list[EngineWord] = []
        for seg in self._decoder.seg() or ():
            word = clean_word(seg.word)
            if word is None:
                continue
            start = min(seg_end_ms, seg_start_ms + int(round(seg.start_frame * self._frame_ms)))
            end = min(seg_end_ms, seg_start_ms + int(round((seg.end_frame + 1) * self._frame_ms)))
            if end - start >= MAX_WORD_MS:
                continue
            confidence = min(1.0, max(0.0, float(seg.prob)))  # posterior, already linear
            words.append(EngineWord(word=word, start_ms=start, end_ms=end, confidence=confidence))
        return tuple(words)

    def _check_open(self) -> None:
        if self._decoder is None:
            raise RuntimeError(f"{self.name} engine is closed")
