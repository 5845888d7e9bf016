#!/usr/bin/env python
"""Where does the time to the first partial go in the pocketsphinx engine? And does a change cost WER?

    .venv/bin/python scripts/bench_first_partial.py [--window 0.6] [--start-window 0.3] [--lead 0.15]
                                                   [--ratio 0.9] [--partial-every-ms 300] [--chunk-ms 100]

Feeds every committed utterance fixture (and the conversation, for WER) through the engine in
``--chunk-ms`` chunks as fast as possible, and for each utterance splits the time from its speech
onset (manifest ``speech_onset_s``) to its first non-empty partial into:

* chunking: a chunk is sent when it is complete, so the audio up to the chunk's end must exist;
* endpointer: audio from the onset until the endpointer declares speech (its start window);
* cadence: audio from that decision until the first partial with words (partials every N ms of
  speech audio, and the decoder's hypothesis may still be empty);
* decode: the wall time of the ``accept`` call that produced it (decoding the buffered window).

Audio times are exact (offsets); decode time is measured here, on this machine, now (give the load
average with it). The pool (decoder checkout) is paid at session open, before any audio, so it is
not on this path unless the pool was empty. The engine's constants are patched in this process
only, to try a change before making it. WER: jiwer over all utterances and the conversation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jiwer  # noqa: E402

from reference_server.engines import EngineConfig, FinalResult, PartialResult  # noqa: E402
from reference_server.engines import pocketsphinx_engine as ps  # noqa: E402
from reference_server.engines.decoder_pool import DecoderPool  # noqa: E402

MANIFEST = ROOT / "fixtures" / "audio" / "manifest.json"


def pcm_of(entry: dict) -> bytes:
    with wave.open(str(MANIFEST.parent / entry["file"])) as wav:
        return wav.readframes(wav.getnframes())


def normalize(text: str) -> str:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).strip()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s))) - 1))] if s else float("nan")


def stream(pcm: bytes, chunk: int, pool: DecoderPool) -> tuple[list, list[tuple[int, float, int]]]:
    """Results, and per chunk: (audio bytes received, accept wall s, first speech offset or -1)."""
    engine = ps.PocketSphinxEngine(EngineConfig(), pool=pool)
    results, timeline = [], []
    decided = -1
    try:
        for i in range(0, len(pcm), chunk):
            t = time.perf_counter()
            out = engine.accept(pcm[i : i + chunk])
            dt = time.perf_counter() - t
            if decided < 0 and engine._in_utt:  # the endpointer declared speech in this chunk
                decided = i + len(pcm[i : i + chunk])
            results += [(r, i + chunk, dt) for r in out]
            timeline.append((i + chunk, dt, decided))
        results += [(r, len(pcm), 0.0) for r in engine.flush()]
    finally:
        engine.close()
    return results, timeline


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", type=float, default=ps.ENDPOINT_WINDOW_S)
    ap.add_argument("--ratio", type=float, default=ps.ENDPOINT_RATIO)
    ap.add_argument("--start-window", type=float, default=ps.START_WINDOW_S, help="the start endpointer's window (s)")
    ap.add_argument("--lead", type=float, default=ps.SPEECH_LEAD_S, help="decode from this long before the start (s)")
    ap.add_argument("--partial-every-ms", type=int, default=ps.PARTIAL_EVERY_MS)
    ap.add_argument("--retry-ms", type=int, default=ps.PARTIAL_RETRY_MS, help="partial retry while no word yet")
    ap.add_argument("--chunk-ms", type=float, default=100.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ps.ENDPOINT_WINDOW_S, ps.ENDPOINT_RATIO, ps.PARTIAL_EVERY_MS = args.window, args.ratio, args.partial_every_ms
    ps.PARTIAL_RETRY_MS = args.retry_ms
    ps.START_WINDOW_S = args.start_window
    ps.SPEECH_LEAD_S = args.lead
    chunk = int(args.chunk_ms * 16) * 2
    fixtures = json.loads(MANIFEST.read_text())["fixtures"]
    pool = DecoderPool(max_idle=1)
    pool.prewarm(1)
    rows, refs, hyps = [], [], []
    for entry in fixtures:
        if entry["kind"] not in ("utterance", "conversation"):
            continue
        results, _timeline = stream(pcm_of(entry), chunk, pool)
        refs.append(normalize(entry["text"]))
        hyps.append(normalize(" ".join(r.text for r, _, _ in results if isinstance(r, FinalResult))))
        if entry["kind"] != "utterance":
            continue
        onset_ms = entry["speech_onset_s"] * 1000
        first = next(((r, end, dt) for r, end, dt in results if isinstance(r, PartialResult) and r.text.strip()), None)
        decided_end = next((d for _, _, d in _timeline if d >= 0), -1)
        if first is None:
            rows.append({"id": entry["id"], "first_partial_ms": None})
            continue
        _, end, dt = first
        decided_ms = decided_end / 32
        rows.append({"id": entry["id"], "onset_ms": onset_ms,
                     "endpointer_ms": decided_ms - onset_ms,  # includes chunk rounding up to the decision
                     "cadence_ms": end / 32 - decided_ms,
                     "decode_ms": dt * 1000,
                     "first_partial_ms": end / 32 - onset_ms + dt * 1000})
    got = [r for r in rows if r["first_partial_ms"] is not None]
    summary = {k: {"p50": round(statistics.median([r[k] for r in got]), 1), "p95": round(pct([r[k] for r in got], 95), 1)}
               for k in ("endpointer_ms", "cadence_ms", "decode_ms", "first_partial_ms")}
    wer = jiwer.wer(refs, hyps)
    out = {"window_s": args.window, "start_window_s": args.start_window, "lead_s": args.lead, "ratio": args.ratio, "partial_every_ms": args.partial_every_ms,
           "retry_ms": args.retry_ms,
           "chunk_ms": args.chunk_ms, "utterances": len(rows), "no_partial": len(rows) - len(got),
           "summary": summary, "wer": round(wer, 4), "load_avg": os.getloadavg()[0], "rows": rows}
    print(f"window {args.window} s (start window {args.start_window} s, lead {args.lead} s), ratio {args.ratio}, partial every {args.partial_every_ms} ms "
          f"(retry {args.retry_ms} ms), chunk {args.chunk_ms:g} ms; "
          f"load average {os.getloadavg()[0]:.2f}")
    for k, v in summary.items():
        print(f"  {k:<17} p50 {v['p50']:>7.1f}  p95 {v['p95']:>7.1f} ms")
    print(f"  utterances without a partial: {len(rows) - len(got)} of {len(rows)}; WER {wer:.4f} over "
          f"{len(refs)} fixtures")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
