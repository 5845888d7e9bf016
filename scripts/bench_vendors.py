#!/usr/bin/env python
"""What the vendor wire layer costs: final latency per protocol against ``/v1/stream``, and the
audio conversion per stream as a share of one core.

    .venv/bin/python scripts/bench_vendors.py --segments 40
    .venv/bin/python scripts/bench_vendors.py --segments 3 --concurrent 200

Latency: one server (scripted engine: it costs nothing, so what is measured is the wire layer,
the session core and the event loop), one connection per protocol, ``--segments`` segments of
five scripted words each. Each segment's audio goes in 500 ms frames (AssemblyAI takes at most
1000 ms a frame) in the protocol's own format (OpenAI: PCM16 at 24 kHz, so the resampler is in
the path; the others 16 kHz PCM16); the latency is from sending the frame that completes the
segment to receiving the protocol's final for it. p50/p95 per protocol and p95 as a ratio to
``/v1/stream``.

Conversion: ``AudioConverter`` on 60 s of audio in 20 ms frames (telephony pacing) for mu-law
8 kHz, PCM16 24 kHz and PCM16 48 kHz; CPU seconds per second of audio is the share of one core a
real-time stream takes.

The machine is shared: the script prints the load average next to the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.services import ReferenceServer  # noqa: E402
from reference_server.wire.audio import AudioConverter, AudioFormat  # noqa: E402

WORD_MS = 300
SEGMENT_WORDS = 5
SCRIPT = " ".join(f"w{i}" for i in range(SEGMENT_WORDS))
FRAME_MS = 500


def pcm(ms: float, rate: int = 16000) -> bytes:
    return b"\x00" * (int(ms * rate / 1000) * 2)


def frames_for_segment(rate: int) -> list[bytes]:
    total_ms = SEGMENT_WORDS * WORD_MS
    return [pcm(FRAME_MS, rate) for _ in range(total_ms // FRAME_MS)]


PACE_S = 0.0  # --concurrent: frames are paced in real time (one 500 ms frame per 500 ms)


async def measure(segments: int, send: Callable[[bytes], Awaitable[None]], final: Callable[[], Awaitable[None]],
                  rate: int, lead_ms: float = 0.0) -> list[float]:
    """Latencies (ms): the frame completing a segment sent -> its final received."""
    out = []
    if lead_ms:
        await send(pcm(lead_ms, rate))  # more than the resampler holds back (up to ~35 ms), so each segment ends inside its last frame
    for _ in range(segments):
        frames = frames_for_segment(rate)
        for f in frames[:-1]:
            await send(f)
            await asyncio.sleep(PACE_S)
        t0 = time.perf_counter()
        await send(frames[-1])
        await final()
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(max(0.0, PACE_S - (time.perf_counter() - t0)))
    return out


async def recv_json(ws: Any, pred: Callable[[dict[str, Any]], bool]) -> None:
    async with asyncio.timeout(10):
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return


async def v1_stream(srv: ReferenceServer, n: int) -> list[float]:
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.auth_headers()) as http:
        sid = (await http.post("/v1/sessions", json={"engine": "scripted", "script": SCRIPT})).json()["session_id"]
    ws = await websockets.connect(f"{srv.ws_url}/v1/stream?session_id={sid}", additional_headers=srv.auth_headers())
    await recv_json(ws, lambda m: m["type"] == "ready")
    offset = 0

    async def send(data: bytes) -> None:
        nonlocal offset
        await ws.send(offset.to_bytes(8, "little") + data)
        offset += len(data)

    try:
        return await measure(n, send, lambda: recv_json(ws, lambda m: m["type"] == "final"), 16000)
    finally:
        await ws.close()


def q(**extra: Any) -> str:
    return urlencode({"model": "scripted", "script": SCRIPT, **extra})


async def deepgram(srv: ReferenceServer, n: int) -> list[float]:
    ws = await websockets.connect(f"{srv.ws_url}/v1/listen?{q()}", additional_headers={
        "Authorization": f"Token {srv.api_key}"})
    try:
        return await measure(n, ws.send, lambda: recv_json(ws, lambda m: m.get("is_final") is True), 16000)
    finally:
        await ws.close()


async def openai_realtime(srv: ReferenceServer, n: int) -> list[float]:
    ws = await websockets.connect(f"{srv.ws_url}/v1/realtime?{q(intent='transcription')}",
                                  additional_headers=srv.auth_headers(), max_size=None)
    await recv_json(ws, lambda m: m["type"] == "session.created")

    async def send(data: bytes) -> None:
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}))

    done = "conversation.item.input_audio_transcription.completed"
    try:
        return await measure(n, send, lambda: recv_json(ws, lambda m: m["type"] == done), 24000, lead_ms=100)
    finally:
        await ws.close()


async def assemblyai(srv: ReferenceServer, n: int) -> list[float]:
    ws = await websockets.connect(f"{srv.ws_url}/v3/ws?{q(sample_rate=16000)}",
                                  additional_headers={"Authorization": srv.api_key})
    await recv_json(ws, lambda m: m["type"] == "Begin")
    try:
        return await measure(n, ws.send, lambda: recv_json(ws, lambda m: m.get("end_of_turn") is True), 16000)
    finally:
        await ws.close()


async def speechmatics(srv: ReferenceServer, n: int) -> list[float]:
    ws = await websockets.connect(f"{srv.ws_url}/v2?{q()}", additional_headers=srv.auth_headers())
    await ws.send(json.dumps({"message": "StartRecognition", "audio_format": {
        "type": "raw", "encoding": "pcm_s16le", "sample_rate": 16000}, "transcription_config": {"language": "en"}}))
    await recv_json(ws, lambda m: m["message"] == "RecognitionStarted")
    try:
        return await measure(n, ws.send, lambda: recv_json(ws, lambda m: m["message"] == "AddTranscript"), 16000)
    finally:
        await ws.close()


PROTOCOLS = {"v1-stream": v1_stream, "deepgram": deepgram, "openai-realtime": openai_realtime,
             "assemblyai": assemblyai, "speechmatics": speechmatics}


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def conversion_cost(seconds: float = 60.0, frame_ms: int = 20) -> dict[str, float]:
    out = {}
    for name, fmt in {"mulaw-8k": AudioFormat("mulaw", 8000), "pcm-24k": AudioFormat("pcm_s16le", 24000),
                      "pcm-48k": AudioFormat("pcm_s16le", 48000)}.items():
        frame = os.urandom(fmt.bytes_per_second * frame_ms // 1000)
        conv = AudioConverter(fmt)
        n = int(seconds * 1000 / frame_ms)
        t0 = time.process_time()
        for _ in range(n):
            conv.convert(frame)
        out[name] = (time.process_time() - t0) / seconds * 100  # % of one core per real-time stream
    return out


async def concurrent(srv: ReferenceServer, segments: int, n: int) -> dict[str, list[float]]:
    """``n`` paced streams at once per protocol, one protocol after the other."""
    out = {}
    for name, fn in PROTOCOLS.items():
        runs = await asyncio.gather(*(fn(srv, segments) for _ in range(n)))
        out[name] = [x for run in runs for x in run]
    return out


async def latencies(srv: ReferenceServer, segments: int) -> dict[str, list[float]]:
    out = {name: await fn(srv, segments) for name, fn in PROTOCOLS.items()}
    out["v1-stream"] += await v1_stream(srv, segments)  # measured first and last: the machine drifts
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--segments", type=int, default=40, help="segments per protocol (default 40)")
    ap.add_argument("--concurrent", type=int, default=0, metavar="N",
                    help="N real-time paced streams at once per protocol instead of one unpaced stream")
    args = ap.parse_args()
    if not 0 <= args.concurrent <= 500:
        ap.error("--concurrent must be 0..500")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with ReferenceServer(engine="scripted", extra_args=["--max-sessions", "2000"]) as srv:
        if args.concurrent:
            global PACE_S
            PACE_S = FRAME_MS / 1000
            results = asyncio.run(concurrent(srv, args.segments, args.concurrent))
        else:
            results = asyncio.run(latencies(srv, args.segments))
    base = pct(results["v1-stream"], 0.95)
    figures: dict[str, Any] = {"latency_ms": {}, "conversion_core_pct": conversion_cost()}
    for name, samples in results.items():
        p95 = pct(samples, 0.95)
        figures["latency_ms"][name] = {"p50": round(statistics.median(samples), 2), "p95": round(p95, 2),
                                       "p95_ratio_to_v1_stream": round(p95 / base, 2) if base else None}
        print(f"{name:16s} final latency p50 {statistics.median(samples):6.2f} ms  p95 {p95:6.2f} ms  "
              f"p95/v1 {p95 / base if base else float('nan'):.2f}")
    for name, share in figures["conversion_core_pct"].items():
        print(f"conversion {name:9s} {share:.3f} % of one core per real-time stream")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
