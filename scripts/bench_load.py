#!/usr/bin/env python
"""Is the load generator ever the bottleneck? Drive N concurrent real-time streams from one Locust
process and measure how late it sends audio (pacing error), how busy it is, and how noisy the
machine itself is.

    .venv/bin/python scripts/bench_load.py --users 200 --duration 60

It runs ``harness load --headless`` (scripted engine, the one-minute conversation so every user
streams continuously) and, alongside it:

* the noise probe ``harness load`` runs beside every load (``harness.load.noise``): how late a
  plain sleep loop wakes, the machine's own scheduling noise, the floor under any pacing figure on
  a shared box; and ``harness load``'s own watch of the Locust processes (``harness.load.generator``),
  whose verdict on whether the generator was the bottleneck is printed;
* psutil samplers of the CPU of the Locust process(es) and of the server (100 % = one core).

It prints the figures and writes them to ``<run dir>/artifacts/load/bench_load.json``. To see
whether a spike was the generator's own event loop blocking (rather than the OS scheduling
something else), add ``GEVENT_MONITOR_THREAD_ENABLE=true GEVENT_MAX_BLOCKING_TIME=0.05``: gevent
then logs every block over 50 ms, with its stack, to ``artifacts/load/locust.log``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def children(root: psutil.Process, word: str) -> list[psutil.Process]:
    try:
        return [p for p in root.children(recursive=True) if word in " ".join(p.cmdline())]
    except psutil.Error:
        return []


class CpuTracker:
    """CPU % (100 = one core) of the processes under ``root`` whose command line has ``word``."""

    def __init__(self, root: psutil.Process, word: str) -> None:
        self.root, self.word = root, word
        self.tracked: dict[int, psutil.Process] = {}
        self.samples: list[float] = []
        self.rss: dict[int, int] = {}  # peak resident bytes per process

    def sample(self) -> None:
        total = 0.0
        for p in children(self.root, self.word):
            if p.pid not in self.tracked:
                self.tracked[p.pid] = p
                p.cpu_percent(None)  # the first call only starts the measurement
        for p in list(self.tracked.values()):
            try:
                total += p.cpu_percent(None)
                self.rss[p.pid] = max(self.rss.get(p.pid, 0), p.memory_info().rss)
            except psutil.Error:
                self.tracked.pop(p.pid, None)
        if self.tracked and total > 0:
            self.samples.append(total)

    def figures(self) -> dict[str, float | int | None]:
        """Mean and max CPU % and the peak resident memory (summed over the processes)."""
        s = self.samples
        return {"mean": round(sum(s) / len(s), 1) if s else None, "max": round(max(s), 1) if s else None,
                "samples": len(s), "peak_rss_mb": round(sum(self.rss.values()) / 2**20, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--spawn-rate", type=float, default=20)
    ap.add_argument("--duration", type=float, default=60, help="seconds")
    ap.add_argument("--fixture", default="conversation-meeting")
    ap.add_argument("--processes", type=int, help="pass --processes to harness load")
    ap.add_argument("--out", help="run directory (default: reports/<run-id>)")
    ap.add_argument("--chunk-ms", type=float, help="pass --chunk-ms to harness load (fewer, larger sends)")
    args = ap.parse_args()

    out = Path(args.out) if args.out else ROOT / "reports" / time.strftime("bench-load-%Y%m%d-%H%M%S")
    cmd = [sys.executable, "-m", "harness.cli", "load", "--headless", "--users", str(args.users), "--spawn-rate",
           str(args.spawn_rate), "--duration", f"{args.duration:g}s", "--fixture", args.fixture, "--no-report",
           "--out", str(out)]
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    if args.chunk_ms:
        cmd += ["--chunk-ms", f"{args.chunk_ms:g}"]
    print("running:", " ".join(cmd), flush=True)
    load = subprocess.Popen(cmd, cwd=ROOT)
    root = psutil.Process(load.pid)
    locust_cpu, server_cpu = CpuTracker(root, "locust"), CpuTracker(root, "reference_server")
    try:
        while load.poll() is None:
            time.sleep(2.0)
            locust_cpu.sample()
            server_cpu.sample()
    finally:
        if load.poll() is None:
            load.terminate()
            load.wait(timeout=30)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    rec = next(r for r in records if r.get("record") == "load")
    generator = rec.get("generator") or {}
    machine = generator.get("noise_ms") or {}
    figures = {
        "users": args.users, "duration_s": args.duration, "fixture": args.fixture, "processes": args.processes,
        "peak_open_sessions": rec["sessions"]["peak_open"], "sessions": rec["sessions"],
        "failures": len(rec.get("failures") or []), "words": rec["words"], "pacing_ms": rec["pacing_ms"],
        "machine_sleep_lateness_ms": machine, "chunk_ms": args.chunk_ms,
        "pacing_to_noise_p99": generator.get("pacing_to_noise_p99"), "generator_warnings": generator.get("warnings"),
        "generator_processes": generator.get("processes"),
        "locust_cpu_percent": locust_cpu.figures(), "server_cpu_percent": server_cpu.figures(),
        "steps": {row["step"]: {k: row[k] for k in ("count", "p50_ms", "p95_ms", "p99_ms")} for row in rec["steps"]},
        "load_avg": list(psutil.getloadavg()), "cpus": psutil.cpu_count(),
    }
    dest = out / "artifacts" / "load" / "bench_load.json"
    dest.write_text(json.dumps(figures, indent=2))
    p = figures["pacing_ms"]
    print(f"\n{args.users} users: peak {figures['peak_open_sessions']} open streams, "
          f"{rec['sessions']['ok']} ok / {rec['sessions']['failed']} failed sessions")
    print(f"pacing error: p50 {p.get('p50')} p95 {p.get('p95')} p99 {p.get('p99')} max {p.get('max')} ms "
          f"over {p.get('count')} chunks")
    print(f"machine sleep lateness (plain process): {machine}")
    print(f"CPU (100 = one core): Locust {figures['locust_cpu_percent']}, server {figures['server_cpu_percent']}; "
          f"load average {figures['load_avg']}")
    print(f"pacing p99 / noise p99 = {figures['pacing_to_noise_p99']} (aim <= 3)")
    for w in figures["generator_warnings"] or []:
        print(f"WARNING: the load generator was the bottleneck: {w}")
    print(f"figures: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
