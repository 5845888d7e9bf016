#!/usr/bin/env python3
"""Benchmark of the reference server on loopback (a script, not a test: it prints figures).

1. Session creation: ``--creations`` sequential POST /v1/sessions, p50/p95/p99 (target p95 < 50 ms).
2. ``--streams`` concurrent real-time streams with the scripted engine, 100 ms frames for
   ``--duration`` seconds each, then finalize. Ack latency = time from sending a frame to the first
   ack whose received_offset covers it (target p95 < 50 ms). Also: final latency as the server
   reports it, the server's CPU and RSS, and every error or unexpected close.

Every loop is bounded (count and time) and the server is a child process on 127.0.0.1, stopped at
the end. The client runs in ``--client-procs`` processes so the client is not the bottleneck.
Usage: .venv/bin/python scripts/bench_server.py [--streams 200] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import httpx
import psutil
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.services import ReferenceServer  # noqa: E402

FRAME_MS = 100
FRAME_BYTES = FRAME_MS * 32
SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def row(name: str, samples: list[float], unit: str = "ms") -> str:
    if not samples:
        return f"{name:<34} {'(no samples)':>10}"
    return (f"{name:<34} {len(samples):>7} {pct(samples, 50):>9.2f} {pct(samples, 95):>9.2f} "
            f"{pct(samples, 99):>9.2f} {max(samples):>9.2f}  {unit}")


async def bench_creation(url: str, key: str, n: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            r = await http.post("/v1/sessions", json={"engine": "scripted", "script": SCRIPT, "sample_rate": 16000})
            out.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 201:
                raise SystemExit(f"session creation failed: {r.status_code} {r.text}")
            await http.post(f"/v1/sessions/{r.json()['session_id']}/finalize")
    return out


async def one_stream(url: str, key: str, duration_s: float, start_delay: float, result: dict) -> None:
    await asyncio.sleep(start_delay)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        r = await http.post("/v1/sessions", json={"engine": "scripted", "script": SCRIPT, "sample_rate": 16000})
        if r.status_code != 201:
            result["errors"].append(f"create {r.status_code}")
            return
        sid = r.json()["session_id"]
    ws_url = url.replace("http://", "ws://") + f"/v1/stream?session_id={sid}"
    sent_at: dict[int, float] = {}  # frame end offset -> send time
    frames = int(duration_s * 1000 / FRAME_MS)
    steady = range(10 * FRAME_BYTES, (frames - 40) * FRAME_BYTES + 1)  # not the first 1 s, not the last 4 s
    pending: list[int] = []  # frame end offsets not yet acked, ascending
    acks: list[float] = result["ack_ms"]
    async with websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"},
                                  max_size=None, open_timeout=30, close_timeout=5) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready"

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                kind = msg["type"]
                result["messages"][kind] = result["messages"].get(kind, 0) + 1
                if kind == "ack":
                    now = time.perf_counter()
                    while pending and pending[0] <= msg["received_offset"]:
                        end = pending.pop(0)
                        latency = (now - sent_at.pop(end)) * 1000
                        acks.append(latency)
                        if end in steady:
                            result["steady_ack_ms"].append(latency)
                elif kind == "error":
                    result["errors"].append(msg["code"])

        task = asyncio.create_task(reader())
        t_start = time.perf_counter()
        payload = b"\x00" * FRAME_BYTES
        for i in range(frames):
            due = t_start + i * FRAME_MS / 1000
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                result["late_sends"] += 1
            offset = i * FRAME_BYTES
            end = offset + FRAME_BYTES
            sent_at[end] = time.perf_counter()
            pending.append(end)
            await ws.send(offset.to_bytes(8, "little") + payload)
        await ws.send(json.dumps({"type": "finalize"}))
        try:
            await asyncio.wait_for(task, timeout=30)
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            pass
        result["closes"][ws.close_code] = result["closes"].get(ws.close_code, 0) + 1


def client_proc(url: str, key: str, n: int, duration_s: float, ramp_s: float, index: int, out: mp.Queue) -> None:
    result = {"ack_ms": [], "steady_ack_ms": [], "errors": [], "messages": {}, "closes": {}, "late_sends": 0}

    async def run() -> None:
        await asyncio.gather(*(one_stream(url, key, duration_s, ramp_s * i / max(1, n), result)
                               for i in range(n)), return_exceptions=False)

    try:
        asyncio.run(asyncio.wait_for(run(), timeout=duration_s + ramp_s + 120))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        result["errors"].append(f"client {index}: {exc!r}")
    out.put(result)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--creations", type=int, default=300)
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of audio per stream")
    ap.add_argument("--ramp", type=float, default=3.0, help="seconds over which streams start")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--echo", action="store_true", help="show the server's output")
    args = ap.parse_args()
    if not (1 <= args.streams <= 1000 and 1 <= args.duration <= 300 and 1 <= args.creations <= 5000):
        ap.error("bounds: 1..1000 streams, 1..300 s duration, 1..5000 creations")

    with ReferenceServer(engine="scripted", host="127.0.0.1", echo=args.echo,
                         extra_args=["--max-sessions", str(args.streams + args.creations + 10)]) as srv:
        proc = psutil.Process(srv.pid)
        creation = asyncio.run(bench_creation(srv.url, srv.api_key, args.creations))

        cpu0 = proc.cpu_times()
        t0 = time.perf_counter()
        queue: mp.Queue = mp.Queue()
        per = [args.streams // args.client_procs + (1 if i < args.streams % args.client_procs else 0)
               for i in range(args.client_procs)]
        procs = [mp.Process(target=client_proc, args=(srv.url, srv.api_key, n, args.duration, args.ramp, i, queue))
                 for i, n in enumerate(per) if n]
        for p in procs:
            p.start()
        peak_rss = 0
        results = []
        deadline = time.monotonic() + args.duration + args.ramp + 180
        while len(results) < len(procs) and time.monotonic() < deadline:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            try:
                results.append(queue.get(timeout=0.5))
            except Exception:  # noqa: BLE001 - queue.Empty: keep sampling
                pass
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
        wall = time.perf_counter() - t0
        cpu1 = proc.cpu_times()
        stats = httpx.get(f"{srv.url}/v1/stats", headers=srv.auth_headers()).json()

    acks = [x for r in results for x in r["ack_ms"]]
    steady_acks = [x for r in results for x in r["steady_ack_ms"]]
    errors = [e for r in results for e in r["errors"]]
    closes: dict = {}
    messages: dict = {}
    for r in results:
        for k, v in r["closes"].items():
            closes[k] = closes.get(k, 0) + v
        for k, v in r["messages"].items():
            messages[k] = messages.get(k, 0) + v
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall * 100

    print(f"{'metric':<34} {'n':>7} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}")
    print(row("session creation (sequential)", creation))
    print(row(f"ack latency ({args.streams} streams)", acks))
    print(row("  steady state (no start/finalize)", steady_acks))
    print(f"{'server p95 final latency':<34} {stats['p95_final_latency_ms']:>9.2f} ms (server-side)")
    print(f"{'server event loop lag (last 60 s)':<34} p95 {stats['loop_lag_p95_ms']:.2f} ms, max {stats['loop_lag_max_ms']:.2f} ms")
    print(f"{'server CPU during streams':<34} {cpu:>9.1f} % of one core")
    print(f"{'server peak RSS':<34} {peak_rss / 1e6:>9.1f} MB")
    print(f"{'messages received':<34} {json.dumps(messages, sort_keys=True)}")
    print(f"{'close codes':<34} {json.dumps({str(k): v for k, v in closes.items()})}")
    print(f"{'late client sends':<34} {sum(r['late_sends'] for r in results)}")
    print(f"{'errors':<34} {len(errors)} {errors[:5]}")
    ok = pct(creation, 95) < 50 and pct(acks, 95) < 50 and not errors
    print(f"targets (creation p95 < 50 ms, ack p95 < 50 ms, no errors): {'met' if ok else 'NOT met'}")
    if acks:
        print(f"ack latency mean {statistics.fmean(acks):.2f} ms over {len(acks)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
