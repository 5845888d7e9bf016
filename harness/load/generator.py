"""Was the load generator itself the bottleneck? Watch it beside the load, then judge.

While Locust runs, :class:`GeneratorWatch` keeps

* a noise probe (``python -m harness.load.noise``, its own process): how late a plain sleep loop
  wakes up on this machine right now, the floor under any pacing figure;
* a psutil sampler of every Locust process's CPU (100 % = one core; a Locust process is one
  gevent loop, so it cannot use more than one core) and, from ``/proc/<pid>/schedstat`` on Linux,
  how long its main thread waited for a CPU while runnable (a starved generator is late too, even
  at low CPU).

:func:`judge_generator` (pure, on those figures and the run's pacing error) says whether to
warn: a Locust process near a core, or pacing error p99 far above the noise. Either way the
latencies the run measured include the generator's own delay, so the summary says so instead of
letting the backend take the blame.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPU_NEAR_CORE_PERCENT = 85.0  # a Locust process's mean CPU at or above this: it had no headroom
CPU_SATURATED_PERCENT = 95.0  # a sample at or above this counts as saturated
SATURATED_SHARE = 0.25  # ... and a quarter of the samples saturated is a bottleneck too
PACING_NOISE_RATIO = 3.0  # pacing error p99 above this multiple of the noise p99: the generator was late
NOISE_FLOOR_MS = 1.0  # a noise p99 below this is taken as this (sub-ms noise makes any ratio huge)
SAMPLE_EVERY_S = 1.0


@dataclass
class GeneratorFigures:
    """What the watch measured: per-process CPU samples, run-queue waits, the noise probe's figures."""

    cpu_samples: dict[int, list[float]] = field(default_factory=dict)  # pid -> CPU % per sample
    runqueue_wait_share: dict[int, float] = field(default_factory=dict)  # pid -> waiting / wall time
    noise_ms: dict[str, Any] = field(default_factory=dict)  # the probe's lateness figures
    errors: list[str] = field(default_factory=list)


def judge_generator(figures: GeneratorFigures, pacing_p99_ms: float | None) -> dict[str, Any]:
    """The ``generator`` part of a load record: figures, ratios and warnings (empty when fine)."""
    warnings: list[str] = []
    processes = []
    for pid, samples in sorted(figures.cpu_samples.items()):
        if not samples:
            continue
        mean = sum(samples) / len(samples)
        saturated = sum(1 for s in samples if s >= CPU_SATURATED_PERCENT) / len(samples)
        processes.append({"pid": pid, "cpu_mean": round(mean, 1), "cpu_max": round(max(samples), 1),
                          "saturated_share": round(saturated, 3), "samples": len(samples),
                          "runqueue_wait_share": figures.runqueue_wait_share.get(pid)})
        if mean >= CPU_NEAR_CORE_PERCENT or saturated >= SATURATED_SHARE:
            warnings.append(f"Locust process {pid} used {mean:.0f} % of a core on average "
                            f"({saturated * 100:.0f} % of samples at >= {CPU_SATURATED_PERCENT:g} %): "
                            "the generator was CPU-bound")
    noise_p99 = figures.noise_ms.get("p99")
    ratio = None
    if pacing_p99_ms is not None and noise_p99 is not None:
        ratio = pacing_p99_ms / max(float(noise_p99), NOISE_FLOOR_MS)
        if ratio > PACING_NOISE_RATIO:
            starved = max((p["runqueue_wait_share"] or 0.0 for p in processes), default=0.0)
            why = (f"; it waited for a CPU {starved * 100:.0f} % of the time (starved by other work)"
                   if starved >= 0.1 else "")
            warnings.append(f"pacing error p99 {pacing_p99_ms:.1f} ms is {ratio:.1f}x the machine's own "
                            f"scheduling noise p99 {float(noise_p99):.1f} ms (limit {PACING_NOISE_RATIO:g}x): "
                            f"the generator sent audio late{why}")
    elif noise_p99 is None:
        figures.errors.append("no noise figure: pacing could not be compared with the machine's noise")
    return {"processes": processes, "noise_ms": figures.noise_ms, "pacing_p99_ms": pacing_p99_ms,
            "pacing_to_noise_p99": None if ratio is None else round(ratio, 2),
            "limits": {"cpu_near_core_percent": CPU_NEAR_CORE_PERCENT, "pacing_noise_ratio": PACING_NOISE_RATIO,
                       "noise_floor_ms": NOISE_FLOOR_MS},
            "bottleneck": bool(warnings), "warnings": warnings, "errors": list(figures.errors)}


def summary_lines(generator: dict[str, Any]) -> list[str]:
    """The summary's lines about the generator: its figures, then one WARNING line per warning."""
    procs = generator.get("processes") or []
    cpu = ", ".join(f"{p['cpu_mean']:.0f} % (max {p['cpu_max']:.0f} %)" for p in procs) or "not measured"
    noise = generator.get("noise_ms") or {}
    ratio = generator.get("pacing_to_noise_p99")
    lines = [f"  generator: Locust CPU {cpu} of a core; machine noise p99 "
             f"{noise.get('p99', 'n/a')} ms; pacing p99 / noise p99 = {ratio if ratio is not None else 'n/a'}"]
    lines += [f"  WARNING: the load generator was the bottleneck: {w}" for w in generator.get("warnings") or []]
    lines += [f"  note: {e}" for e in generator.get("errors") or []]
    return lines


def _runqueue_ns(pid: int) -> tuple[float, float] | None:
    """(ns on a CPU, ns runnable but waiting) of the process's main thread, or None off Linux."""
    try:
        run, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
        return float(run), float(wait)
    except (OSError, ValueError):
        return None


class GeneratorWatch:
    """Samples Locust's processes (the group under ``root_pid``) and runs the noise probe."""

    def __init__(self, max_s: float, python: str = sys.executable) -> None:
        self.max_s, self.python = max_s, python
        self.figures = GeneratorFigures()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe: subprocess.Popen | None = None
        self._root: int | None = None

    def start(self) -> None:
        self._probe = subprocess.Popen([self.python, "-m", "harness.load.noise", "--seconds", f"{self.max_s:g}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def watch(self, root_pid: int) -> None:
        """Start sampling the Locust process tree rooted at ``root_pid``."""
        self._root = root_pid
        self._thread = threading.Thread(target=self._sample_loop, name="generator-watch", daemon=True)
        self._thread.start()

    def _sample_loop(self) -> None:
        import psutil

        tracked: dict[int, Any] = {}
        first: dict[int, tuple[float, tuple[float, float]]] = {}
        last: dict[int, tuple[float, tuple[float, float]]] = {}
        try:
            root = psutil.Process(self._root)
        except psutil.Error as exc:
            self.figures.errors.append(f"could not watch the Locust process: {exc}")
            return
        while not self._stop.wait(SAMPLE_EVERY_S):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break  # Locust is gone
            for found in procs:
                # children() makes new objects each time, and a new object's cpu_percent() has no
                # previous reading (it says 0.0): keep asking the first object made for that pid.
                p = tracked.get(found.pid)
                try:
                    if p is None:
                        tracked[found.pid] = found
                        found.cpu_percent(None)  # the first call starts the measurement
                        continue
                    self.figures.cpu_samples.setdefault(p.pid, []).append(p.cpu_percent(None))
                except psutil.Error:
                    tracked.pop(found.pid, None)
                    continue
                rq = _runqueue_ns(p.pid)
                if rq is not None:
                    first.setdefault(p.pid, (time.monotonic(), rq))
                    last[p.pid] = (time.monotonic(), rq)
        for pid, (t0, (_, w0)) in first.items():
            t1, (_, w1) = last[pid]
            if t1 - t0 >= SAMPLE_EVERY_S:
                self.figures.runqueue_wait_share[pid] = round((w1 - w0) / 1e9 / (t1 - t0), 3)

    def stop(self) -> GeneratorFigures:
        """Stop sampling and the probe; the figures (errors named, never dropped silently)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._probe is not None:
            if self._probe.poll() is None:
                self._probe.terminate()  # the probe prints its figures on SIGTERM
            try:
                out, err = self._probe.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self._probe.kill()
                out, err = self._probe.communicate()
            try:
                self.figures.noise_ms = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                self.figures.errors.append(f"the noise probe printed nothing usable (exit {self._probe.returncode}): "
                                           f"{(err or out).strip()[-300:]}")
        return self.figures
