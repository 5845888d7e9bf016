"""The pocketsphinx engine's real-time factor, measured here and now.

    python -m reference_server.engines.rtf --wav FILE [--seconds S] [--repeats 3]

prints one JSON line: the wall-clock and CPU real-time factors (decode time / audio time) of one
stream fed as fast as possible in 100 ms chunks, partials and the final included. A capacity
figure is only comparable across machines as a share of the limit ``cores / RTF``, and on a shared
machine that limit moves with the load, so capacity runs measure it in the same run, beside the
load (``harness load --find-capacity``, ``scripts/bench_engines.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import wave
from pathlib import Path

from . import EngineConfig, FinalResult
from .decoder_pool import DecoderPool
from .pocketsphinx_engine import PocketSphinxEngine

CHUNK_BYTES = 3200  # 100 ms of 16 kHz mono s16le


def read_pcm(path: Path, seconds: float | None = None) -> bytes:
    """16 kHz mono s16le frames of a WAV file, cut to ``seconds`` when given."""
    with wave.open(str(path)) as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (16000, 1, 2):
            raise ValueError(f"{path}: need 16 kHz mono 16-bit PCM")
        pcm = wav.readframes(wav.getnframes())
    if seconds is not None:
        if not seconds > 0:
            raise ValueError(f"--seconds must be > 0, got {seconds}")
        pcm = pcm[: int(seconds * 16000) * 2]
    return pcm


def measure(pcm: bytes, repeats: int = 3, pool: DecoderPool | None = None) -> dict[str, object]:
    """Median wall and CPU (this thread's) RTF over ``repeats`` decodes of ``pcm``; the transcript."""
    if len(pcm) < CHUNK_BYTES:
        raise ValueError(f"need at least 100 ms of audio to measure a real-time factor, got {len(pcm)} bytes")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    pool = pool or DecoderPool(max_idle=1)
    audio_s = len(pcm) / 32000
    wall, cpu, text = [], [], ""
    for _ in range(repeats):
        engine = PocketSphinxEngine(EngineConfig(), pool=pool)  # a pooled decoder: no model load timed
        started, started_cpu = time.perf_counter(), time.thread_time()
        results = []
        for i in range(0, len(pcm), CHUNK_BYTES):
            results += engine.accept(pcm[i : i + CHUNK_BYTES])
        results += engine.flush()
        wall.append((time.perf_counter() - started) / audio_s)
        cpu.append((time.thread_time() - started_cpu) / audio_s)
        engine.close()
        text = " ".join(r.text for r in results if isinstance(r, FinalResult))
    return {"rtf_wall": round(statistics.median(wall), 4), "rtf_cpu": round(statistics.median(cpu), 4),
            "rtf_wall_all": [round(w, 4) for w in wall], "audio_s": round(audio_s, 3), "repeats": repeats,
            "transcript": text}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wav", type=Path, required=True, help="16 kHz mono s16le WAV")
    ap.add_argument("--seconds", type=float, help="use only the first S seconds")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    try:
        pcm = read_pcm(args.wav, args.seconds)
        # One warm-up decode first: the first use of a decoder pays for lazy set-up, not decoding.
        pool = DecoderPool(max_idle=1)
        measure(pcm[: 10 * CHUNK_BYTES], 1, pool)
        figures = measure(pcm, args.repeats, pool)
    except (OSError, ValueError) as exc:
        print(f"rtf: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
