#!/usr/bin/env python
"""Measure the pocketsphinx engine: decoder build time, real-time factor, concurrent capacity.

    .venv/bin/python scripts/bench_engines.py [--streams 2,4,6,8,10] [--rounds 3] [--wav FILE]
                                              [--workers N] [--modes in-process,workers]

1. Decoder creation: seconds to build one decoder (model load).
2. Real-time factor: decode time / audio time for one stream fed as fast as possible in 100 ms
   chunks (partials and the final included).
3. Capacity: N threads, each one stream fed at real-time pace in 100 ms chunks (streams staggered
   across the first second), then flushed. Final latency = when flush returns the final minus when
   the audio ended in real time (so it includes any backlog); chunk lag = how late each chunk's
   processing finished after that chunk was due; chunk CPU = the thread's CPU time per chunk. A row is "ok" when final latency p95 < 500 ms.
   A run whose streams fall more than --give-up-s behind real time stops early (overloaded), and
   larger counts are not tried after a row that was not ok.
4. Capacity as a share of the physical limit measured in this run: cores / RTF (CPU), e.g. "4
   streams at final p95 < 500 ms = 82 % of the 4.9-stream limit (2 cores / RTF 0.41)"; in-process
   the limit is one core (the GIL), with workers min(cores, workers). --json FILE keeps it all.
   Mode "in-process" decodes on this process's threads (the GIL limits it to one core); mode
   "workers" decodes through a pool of --workers engine worker processes (ProcessEngine), where
   chunk CPU is only this side's (the IPC), not the decoding.

The utterance is the longest 5-8 s one in fixtures/audio/manifest.json, cut 0.2 s after its speech
ends (so the final comes from the flush); without a manifest it is synthesized with flite. --wav
gives a 16 kHz mono s16le WAV to use as is.
No network traffic; every loop is bounded by the audio length, --rounds and --give-up-s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_server.engines import EngineConfig, FinalResult  # noqa: E402
from reference_server.engines.decoder_pool import DecoderPool, build_decoder  # noqa: E402
from reference_server.engines.pocketsphinx_engine import PocketSphinxEngine  # noqa: E402
from reference_server.engines.workers import WorkerPool  # noqa: E402

from harness.load import limit as limit_mod  # noqa: E402

MODES = ("in-process", "workers")

TEXT = (
    "please call stella and ask her to bring these things with her from the store "
    "six spoons of fresh snow peas"
)
CHUNK = 3200  # 100 ms
CHUNK_S = 0.1
LATENCY_SLO_MS = 500.0


MANIFEST = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "manifest.json"


def fixture_utterance() -> tuple[bytes, str] | None:
    """The longest 5-8 s utterance of the committed fixtures, cut shortly after its speech."""
    if not MANIFEST.exists():
        return None
    entries = [
        f for f in json.loads(MANIFEST.read_text())["fixtures"]
        if f.get("kind") == "utterance" and 5.0 <= f.get("duration_s", 0) <= 8.0 and f.get("speech_end_s")
    ]
    if not entries:
        return None
    entry = max(entries, key=lambda f: f["duration_s"])
    pcm = read_wav(MANIFEST.parent / entry["file"])
    return pcm[: int((entry["speech_end_s"] + 0.2) * 16000) * 2], entry["id"]


def synthesize(text: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp, "raw.wav"), Path(tmp, "out.wav")
        subprocess.run(["flite", "-voice", "rms", "-t", text, "-o", str(raw)], check=True)
        # 0.5 s lead-in, no tail: the final comes from flush, which is what we time.
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.5", "0"], check=True)
        return read_wav(out)


def read_wav(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (16000, 1, 2):
            raise SystemExit(f"{path}: need 16 kHz mono 16-bit PCM")
        return wav.readframes(wav.getnframes())


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[index]


def bench_creation(count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        build_decoder()
        times.append(time.perf_counter() - started)
    return times


def bench_rtf(pcm: bytes, pool: DecoderPool, repeats: int) -> tuple[list[float], list[float], str]:
    """Wall-clock and CPU (this thread's) real-time factors; CPU time ignores other processes."""
    wall, cpu, text = [], [], ""
    audio_s = len(pcm) / 32000
    for _ in range(repeats):
        engine = PocketSphinxEngine(EngineConfig(), pool=pool)
        started, started_cpu = time.perf_counter(), time.thread_time()
        results = []
        for i in range(0, len(pcm), CHUNK):
            results += engine.accept(pcm[i : i + CHUNK])
        results += engine.flush()
        wall.append((time.perf_counter() - started) / audio_s)
        cpu.append((time.thread_time() - started_cpu) / audio_s)
        engine.close()
        text = " ".join(r.text for r in results if isinstance(r, FinalResult))
    return wall, cpu, text


@dataclass
class Load:
    final_latency_ms: list[float] = field(default_factory=list)
    chunk_lag_ms: list[float] = field(default_factory=list)
    chunk_cpu_ms: list[float] = field(default_factory=list)
    missing_finals: int = 0
    gave_up: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def stream(pcm: bytes, make_engine: Callable[[], object], start_at: float, rounds: int, give_up_s: float,
           load: Load) -> None:
    chunks = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
    t0 = start_at
    for _ in range(rounds):
        engine = make_engine()
        lags, cpu = [], []
        try:
            for index, chunk in enumerate(chunks):
                due = t0 + (index + 1) * CHUNK_S  # the chunk is complete, in real time, then
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                began_cpu = time.thread_time()
                engine.accept(chunk)
                done = time.perf_counter()
                cpu.append((time.thread_time() - began_cpu) * 1000)
                lags.append((done - due) * 1000)
                if done - due > give_up_s or load.gave_up:
                    load.gave_up = True
                    with load.lock:  # keep what was measured up to here for the table
                        load.chunk_lag_ms += lags
                        load.chunk_cpu_ms += cpu
                    return
            audio_end = t0 + len(chunks) * CHUNK_S
            results = engine.flush()
            latency = (time.perf_counter() - audio_end) * 1000
        finally:
            engine.close()
        with load.lock:
            load.chunk_lag_ms += lags
            load.chunk_cpu_ms += cpu
            if any(isinstance(r, FinalResult) for r in results):
                load.final_latency_ms.append(latency)
            else:
                load.missing_finals += 1
        t0 = max(time.perf_counter(), audio_end) + 0.5  # a short pause, then the next utterance


def bench_load(pcm: bytes, make_engine: Callable[[], object], streams: int, rounds: int, give_up_s: float) -> Load:
    load = Load()
    start = time.perf_counter() + 0.2
    threads = [
        threading.Thread(target=stream, args=(pcm, make_engine, start + i / streams, rounds, give_up_s, load))
        for i in range(streams)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="2,4,6,8,10", help="comma-separated stream counts")
    parser.add_argument("--rounds", type=int, default=3, help="utterances per stream")
    parser.add_argument("--wav", type=Path, help="16 kHz mono s16le WAV to use instead of flite")
    parser.add_argument("--give-up-s", type=float, default=5.0, help="stop a run this far behind")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="engine worker processes for the workers mode (default: one per CPU)")
    parser.add_argument("--json", type=Path, help="write the figures (rows, limit, share of it) to this file")
    parser.add_argument("--modes", default="in-process",
                        help=f"comma-separated capacity modes to run: {', '.join(MODES)}")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        parser.error(f"--modes takes {', '.join(MODES)}; got {args.modes!r}")
    if not 1 <= args.workers <= 16:
        parser.error(f"--workers must be 1..16, got {args.workers!r}")
    try:
        counts = [int(n) for n in args.streams.split(",")]
    except ValueError:
        parser.error(f"--streams must be comma-separated integers, got {args.streams!r}")
    if any(n < 1 or n > 32 for n in counts) or not 1 <= args.rounds <= 20:
        parser.error("--streams values must be 1..32 and --rounds 1..20")

    if args.wav:
        pcm, source = read_wav(args.wav), str(args.wav)
    else:
        pcm, source = fixture_utterance() or (synthesize(TEXT), "flite")
    audio_s = len(pcm) / 32000
    print(f"utterance: {source}, {audio_s:.2f} s of audio, {len(pcm)} bytes")

    creation = bench_creation(3)
    print(f"decoder creation: wall mean {statistics.mean(creation):.3f} s, min {min(creation):.3f} s (n=3)")
    print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)")

    pool = DecoderPool(max_idle=max(counts))
    wall, cpu, text = bench_rtf(pcm, pool, repeats=3)
    print(f"real-time factor (one stream, as fast as possible): wall median {statistics.median(wall):.3f} "
          f"(min {min(wall):.3f}, max {max(wall):.3f}); CPU median {statistics.median(cpu):.3f}")
    print(f"transcript: {text!r}")
    # The binding holds the GIL while decoding, so one server process decodes on one core at a time.
    print(f"capacity from CPU time: ~{int(0.8 / statistics.median(cpu))} real-time streams per process "
          f"at 80% of one core (the decoder holds the GIL: threads do not add cores)")
    # The physical limit, measured in this run: capacity is stated as a share of it.
    n_cores = limit_mod.cores()
    limits = {"in-process": limit_mod.PhysicalLimit(1, statistics.median(cpu), statistics.median(wall), os.getloadavg()[0]),
              "workers": limit_mod.PhysicalLimit(min(n_cores, args.workers), statistics.median(cpu),
                                                 statistics.median(wall), os.getloadavg()[0])}
    print(f"physical limit: {n_cores} cores / RTF {statistics.median(cpu):.3f} = "
          f"{n_cores / statistics.median(cpu):.1f} real-time streams (in-process: 1 core, the GIL)")
    report: dict[str, object] = {"utterance": source, "audio_s": audio_s, "rtf_wall": statistics.median(wall),
                                 "rtf_cpu": statistics.median(cpu), "cores": n_cores, "modes": {}}
    summaries = []
    for mode in modes:
        print()
        if mode == "in-process":
            print("capacity, in-process (threads of one process):")
            pool.prewarm(max(counts))
            rows = run_table(pcm, lambda: PocketSphinxEngine(EngineConfig(), pool=pool), counts, args)
        else:
            workers = WorkerPool(args.workers, prewarm=max(2, -(-max(counts) // args.workers)))
            try:
                started = time.perf_counter()
                workers.start(wait_for_spares=True)
                print(f"capacity, through {args.workers} engine worker processes "
                      f"(started in {time.perf_counter() - started:.2f} s):")
                rows = run_table(pcm, lambda: workers.create(EngineConfig()), counts, args)
            finally:
                workers.shutdown()
        held = max((r["streams"] for r in rows if r["ok"]), default=None)
        limit = limits[mode]
        limit = limit_mod.PhysicalLimit(limit.cores, limit.rtf, limit.rtf_wall, round(os.getloadavg()[0], 2))
        summary = f"{mode}: " + limit_mod.capacity_sentence(held, LATENCY_SLO_MS, limit)
        summaries.append(summary)
        report["modes"][mode] = {"rows": rows, "largest_ok_streams": held, "summary": summary,  # type: ignore[index]
                                 **limit_mod.capacity_figures(held, limit)}
    pool.clear()
    print()
    for summary in summaries:
        print(summary)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"figures: {args.json}")
    return 0


def run_table(pcm: bytes, make_engine: Callable[[], object], counts: list[int],
              args: argparse.Namespace) -> list[dict[str, object]]:
    """Print one row per stream count and return the rows (for the summary and --json)."""
    rows: list[dict[str, object]] = []
    header = f"{'streams':>7} {'finals':>6} {'final p50':>9} {'final p95':>9} {'lag p50':>8} {'lag p95':>8} " \
             f"{'lag max':>8} {'chunk CPU p95':>13}  verdict"
    print(header)
    print("-" * len(header))
    for n in counts:
        load = bench_load(pcm, make_engine, n, args.rounds, args.give_up_s)
        p95 = percentile(load.final_latency_ms, 95)
        ok = not load.gave_up and load.missing_finals == 0 and p95 < LATENCY_SLO_MS
        verdict = "ok" if ok else ("overloaded (gave up)" if load.gave_up else "too slow")
        print(f"{n:>7} {len(load.final_latency_ms):>6} {percentile(load.final_latency_ms, 50):>7.0f}ms "
              f"{p95:>7.0f}ms {percentile(load.chunk_lag_ms, 50):>6.0f}ms {percentile(load.chunk_lag_ms, 95):>6.0f}ms "
              f"{max(load.chunk_lag_ms, default=float('nan')):>6.0f}ms {percentile(load.chunk_cpu_ms, 95):>11.1f}ms  {verdict}",
              flush=True)
        rows.append({"streams": n, "ok": ok, "verdict": verdict, "finals": len(load.final_latency_ms),
                     "final_p50_ms": percentile(load.final_latency_ms, 50), "final_p95_ms": p95,
                     "lag_p95_ms": percentile(load.chunk_lag_ms, 95), "load_avg": os.getloadavg()[0]})
        if not ok:  # more streams only take longer to fail
            break
    return rows


if __name__ == "__main__":
    sys.exit(main())
