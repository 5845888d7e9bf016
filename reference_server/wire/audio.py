"""Incoming audio to the engines' format (16 kHz signed 16-bit little-endian mono).

Vendors take telephony and studio audio: G.711 mu-law and a-law (8 bit) and 16-bit or 32-bit
float PCM at 8 to 48 kHz. Decoding is a table lookup (the G.711 expansion, computed once with
numpy: ``audioop`` is deprecated and gone in Python 3.13); resampling is soxr's streaming
resampler (the SoX resampler library, "HQ" quality), which keeps its filter state across frames so
a stream cut into arbitrary frames converts exactly like the whole stream. A sample split across
two frames waits for its other bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

ENGINE_RATE = 16000
SAMPLE_RATES = (8000, 16000, 24000, 44100, 48000)


def _mulaw_table() -> np.ndarray:
    """ITU-T G.711 mu-law expansion of all 256 codes to 16-bit linear."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 a-law expansion of all 256 codes to 16-bit linear."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


MULAW = _mulaw_table()
ALAW = _alaw_table()

# encoding name -> (bytes per sample, decoder from raw bytes to int16 samples)
_DECODERS = {
    "pcm_s16le": (2, lambda b: np.frombuffer(b, dtype="<i2")),
    "pcm_f32le": (4, lambda b: np.clip(np.frombuffer(b, dtype="<f4") * 32768.0, -32768, 32767).astype(np.int16)),
    "mulaw": (1, lambda b: MULAW[np.frombuffer(b, dtype=np.uint8)]),
    "alaw": (1, lambda b: ALAW[np.frombuffer(b, dtype=np.uint8)]),
}
ENCODINGS = tuple(_DECODERS)


class AudioFormatError(ValueError):
    """An encoding or sample rate this server does not take; ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AudioFormat:
    encoding: str  # one of ENCODINGS
    sample_rate: int

    def check(self) -> AudioFormat:
        if self.encoding not in _DECODERS:
            raise AudioFormatError("encoding", f"encoding {self.encoding!r} is not supported; use one of "
                                               f"{', '.join(ENCODINGS)}")
        if isinstance(self.sample_rate, bool) or self.sample_rate not in SAMPLE_RATES:
            raise AudioFormatError("sample_rate", f"sample_rate {self.sample_rate!r} is not supported; use one of "
                                                  f"{', '.join(map(str, SAMPLE_RATES))} Hz")
        return self

    @property
    def bytes_per_second(self) -> int:
        return _DECODERS[self.encoding][0] * self.sample_rate

    def duration_ms(self, n_bytes: int) -> float:
        return n_bytes * 1000 / self.bytes_per_second


class AudioConverter:
    """One stream's converter: bytes in the client's format -> 16 kHz s16le bytes."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt.check()
        self.width, self._decode = _DECODERS[fmt.encoding]
        self._rest = b""
        self._resampler = (None if fmt.sample_rate == ENGINE_RATE
                           else soxr.ResampleStream(fmt.sample_rate, ENGINE_RATE, 1, dtype="int16", quality="HQ"))

    @property
    def passthrough(self) -> bool:
        return self._resampler is None and self.format.encoding == "pcm_s16le"

    def convert(self, data: bytes, *, last: bool = False) -> bytes:
        data = self._rest + data
        cut = len(data) - len(data) % self.width
        data, self._rest = data[:cut], data[cut:]
        if self.passthrough:
            return data
        samples = self._decode(data) if data else np.zeros(0, dtype=np.int16)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=last)
        return samples.astype("<i2", copy=False).tobytes()

    def flush(self) -> bytes:
        """The resampler's last samples (its filter delay), at the end of the stream or of a
        stretch of it (an OpenAI commit); the stream may go on after it, with a fresh filter."""
        if self._resampler is None:
            return b""
        tail = self.convert(b"", last=True)
        self._resampler = soxr.ResampleStream(self.format.sample_rate, ENGINE_RATE, 1, dtype="int16", quality="HQ")
        return tail
