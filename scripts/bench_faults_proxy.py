#!/usr/bin/env python3
"""Benchmark of the WebSocket fault proxy (a script, not a test: it prints figures).

``--streams`` concurrent scripted Deepgram streams (``/v1/listen``, 100 ms frames at real time for
``--duration`` seconds, then CloseStream), first direct to the reference server, then through
``harness faults`` running a schedule that is active on every connection (its triggers are checked
on every message; a final is duplicated and the duplicates are ignored by the measurement, the
other steps never fire). Result latency = arrival of a final minus the send time of the audio
byte that ends it. Reported: final latency p50/p95 direct and through the proxy, the difference
(the proxy's added latency), and the proxy process's CPU per stream (psutil, user + system time
over the proxied phase).

The server and the proxy are child processes on 127.0.0.1; the clients run in ``--client-procs``
processes so the client is not the bottleneck. Every loop is bounded in count and time.
Usage: .venv/bin/python scripts/bench_faults_proxy.py [--streams 200] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import psutil
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.services import ReferenceServer  # noqa: E402

FRAME_MS = 100
FRAME_BYTES = FRAME_MS * 32
SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
SCHEDULE = """\
[[fault]]
type = "duplicate_final"
nth = 2
[[fault]]
type = "vendor_error"
preset = "deepgram-net-0000"
at = { audio_ms = 100000000 }
[[fault]]
type = "stall"
at = { result = 1000000 }
"""


def pct(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def one_stream(base: str, key: str, duration_s: float, start_delay_s: float) -> tuple[list[float], str | None]:
    await asyncio.sleep(start_delay_s)
    query = urlencode({"encoding": "linear16", "sample_rate": 16000, "model": "scripted", "script": SCRIPT})
    sent_at: list[float] = []  # send time of frame i
    latencies: list[float] = []
    seen: set[float] = set()
    try:
        async with websockets.connect(f"{base}/v1/listen?{query}", additional_headers={"Authorization": f"Token {key}"},
                                      open_timeout=30, close_timeout=10, max_size=None) as ws:
            async def reader() -> None:
                async for raw in ws:
                    now = time.perf_counter()
                    m = json.loads(raw)
                    if m.get("type") != "Results" or not m.get("is_final"):
                        continue
                    end = round(m["start"] + m["duration"], 3)
                    if end in seen:  # the proxy's duplicate
                        continue
                    seen.add(end)
                    frame = max(0, math.ceil(end * 1000 / FRAME_MS) - 1)
                    if frame < len(sent_at):
                        latencies.append((now - sent_at[frame]) * 1000)

            task = asyncio.create_task(reader())
            t0 = time.perf_counter()
            for i in range(int(duration_s * 1000 / FRAME_MS)):
                await asyncio.sleep(max(0.0, t0 + i * FRAME_MS / 1000 - time.perf_counter()))
                sent_at.append(time.perf_counter())
                await ws.send(b"\x00" * FRAME_BYTES)
            await ws.send(json.dumps({"type": "CloseStream"}))
            await asyncio.wait_for(task, 60)
    except Exception as exc:  # noqa: BLE001 - counted and printed, never a silent loss
        return latencies, repr(exc)
    return latencies, None


def client_proc(base: str, key: str, n: int, duration_s: float, offset: int, spread_s: float, out: mp.Queue) -> None:
    async def main() -> list:
        return await asyncio.gather(*(one_stream(base, key, duration_s, (offset + i) * spread_s) for i in range(n)))

    out.put(asyncio.run(main()))


def run_phase(base: str, key: str, streams: int, duration_s: float, procs: int) -> tuple[list[float], list[str]]:
    q: mp.Queue = mp.Queue()
    per = [streams // procs + (1 if i < streams % procs else 0) for i in range(procs)]
    spread_s = min(2.0, duration_s / 4) / max(1, streams)
    ps, offset = [], 0
    for n in per:
        ps.append(mp.Process(target=client_proc, args=(base, key, n, duration_s, offset, spread_s, q)))
        offset += n
    for p in ps:
        p.start()
    results = [q.get(timeout=duration_s + 300) for _ in ps]
    for p in ps:
        p.join(timeout=30)
    lat = [x for r in results for ls, _ in r for x in ls]
    errors = [e for r in results for _, e in r if e]
    return lat, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of audio per stream")
    ap.add_argument("--client-procs", type=int, default=2)
    args = ap.parse_args()
    if not 1 <= args.streams <= 1000 or not 1 <= args.duration <= 600:
        ap.error("--streams must be 1..1000 and --duration 1..600")
    with ReferenceServer(engine="scripted") as server, tempfile.TemporaryDirectory() as tmp:
        direct, direct_errors = run_phase(server.ws_url, server.api_key, args.streams, args.duration, args.client_procs)
        sched = Path(tmp) / "faults.toml"
        sched.write_text(SCHEDULE)
        harness = Path(sys.executable).with_name("harness")
        proxy = subprocess.Popen([str(harness), "faults", "--upstream", server.ws_url, "--faults", str(sched)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            url = None
            deadline = time.monotonic() + 60
            assert proxy.stdout is not None
            while time.monotonic() < deadline:
                line = proxy.stdout.readline()
                if not line:
                    raise SystemExit(f"harness faults exited ({proxy.wait()}) before it was ready")
                if line.startswith("fault proxy on "):
                    url = line.split()[3]
                if "fault proxy ready" in line:
                    break
            else:
                raise SystemExit("harness faults not ready within 60 s")
            ps = psutil.Process(proxy.pid)
            cpu0, t0 = ps.cpu_times(), time.monotonic()
            proxied, proxied_errors = run_phase(url, server.api_key, args.streams, args.duration, args.client_procs)
            cpu1, t1 = ps.cpu_times(), time.monotonic()
        finally:
            proxy.terminate()
            proxy.wait(timeout=30)
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(f"{args.streams} streams x {args.duration:g} s of audio, scripted engine, Deepgram protocol")
    print(f"{'':<22}{'finals':>8}{'p50 ms':>10}{'p95 ms':>10}{'errors':>8}")
    print(f"{'direct':<22}{len(direct):>8}{pct(direct, 50):>10.2f}{pct(direct, 95):>10.2f}{len(direct_errors):>8}")
    print(f"{'through the proxy':<22}{len(proxied):>8}{pct(proxied, 50):>10.2f}{pct(proxied, 95):>10.2f}"
          f"{len(proxied_errors):>8}")
    print(f"added result latency: p50 {pct(proxied, 50) - pct(direct, 50):+.2f} ms, "
          f"p95 {pct(proxied, 95) - pct(direct, 95):+.2f} ms")
    print(f"proxy CPU: {cpu_s:.2f} s over {t1 - t0:.1f} s = {100 * cpu_s / (t1 - t0):.1f} % of a core; "
          f"{1000 * cpu_s / (t1 - t0) / args.streams:.2f} ms CPU per second per stream")
    for e in (direct_errors + proxied_errors)[:5]:
        print("error:", e)
    return 0 if not (direct_errors or proxied_errors) else 1


if __name__ == "__main__":
    sys.exit(main())
