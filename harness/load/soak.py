"""Soak: does the backend's memory stay flat under steady load?

A :class:`HealthSampler` thread reads ``rss_bytes`` from ``GET /health`` every few seconds while
the load runs. :func:`judge_growth` then fits a least-squares line through the samples taken
after a warm-up (caches, pools and the allocator fill up first) and fails when the slope in MB per
minute, or the total growth over the judged span, exceeds its threshold. A leak that keeps every
partial of every session (``unbounded-transcript``) grows by megabytes a minute at a handful of
streams; a healthy server's resident size levels off.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.checks.verdict import Status, Verdict

MB = 1024 * 1024


@dataclass(frozen=True)
class GrowthLimits:
    warmup_s: float = 30.0
    max_slope_mb_per_min: float = 2.0
    max_growth_mb: float = 25.0
    min_samples: int = 6


@dataclass
class HealthSampler:
    """Polls ``/health`` on a thread; every answer (or error) is kept with its wall-clock time."""

    url: str  # the backend's base URL
    api_key: str | None = None
    interval_s: float = 2.0
    timeout_s: float = 5.0
    max_samples: int = 100_000  # bounded even if a caller forgets to stop it
    samples: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HealthSampler:
        self._thread = threading.Thread(target=self._run, name="health-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)

    def __enter__(self) -> HealthSampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with httpx.Client(trust_env=False, timeout=self.timeout_s) as client:
            while not self._stop.is_set() and len(self.samples) < self.max_samples:
                self.sample_once(client, headers)
                self._stop.wait(self.interval_s)

    def sample_once(self, client: httpx.Client, headers: dict[str, str]) -> None:
        t = time.time()
        try:
            resp = client.get(self.url.rstrip("/") + "/health", headers=headers)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.errors.append(f"{time.strftime('%H:%M:%S')}: {type(exc).__name__}: {exc}")
            return
        rss = body.get("rss_bytes") if isinstance(body, dict) else None
        if isinstance(rss, bool) or not isinstance(rss, int):
            self.errors.append(f"/health rss_bytes is {rss!r}, not an integer (HTTP {resp.status_code})")
            return
        self.samples.append({"t": round(t, 3), "rss_bytes": rss,
                             "active_sessions": body.get("active_sessions"),
                             "active_connections": body.get("active_connections")})


def linear_fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y over x."""
    n = len(points)
    if n < 2:
        raise ValueError("a line needs at least two points")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("all points share one x: no slope")
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx


def judge_growth(samples: list[dict[str, Any]], limits: GrowthLimits = GrowthLimits(),
                 errors: list[str] | None = None, who: str = "soak") -> tuple[Verdict, dict[str, Any]]:
    """The ``soak.memory`` verdict and the figures for the ``soak`` record."""
    figures: dict[str, Any] = {"samples": len(samples), "warmup_s": limits.warmup_s,
                               "max_slope_mb_per_min": limits.max_slope_mb_per_min,
                               "max_growth_mb": limits.max_growth_mb}
    if errors:
        figures["health_errors"] = len(errors)
    if not samples:
        why = f"; /health failed: {errors[0]}" if errors else ""
        return Verdict("soak.memory", Status.UNKNOWN, f"{who}: no rss_bytes sample{why}", {}, figures), figures
    t0 = samples[0]["t"]
    judged = [s for s in samples if s["t"] - t0 >= limits.warmup_s]
    figures["rss_start_mb"] = round(samples[0]["rss_bytes"] / MB, 2)
    figures["rss_end_mb"] = round(samples[-1]["rss_bytes"] / MB, 2)
    figures["rss_peak_mb"] = round(max(s["rss_bytes"] for s in samples) / MB, 2)
    if len(judged) < limits.min_samples:
        return (Verdict("soak.memory", Status.UNKNOWN,
                        f"{who}: {len(judged)} rss sample(s) after the {limits.warmup_s:g} s warm-up, need "
                        f"{limits.min_samples}: run longer", {}, figures), figures)
    points = [((s["t"] - t0) / 60.0, s["rss_bytes"] / MB) for s in judged]
    slope, _ = linear_fit(points)
    growth = (judged[-1]["rss_bytes"] - judged[0]["rss_bytes"]) / MB
    span_min = points[-1][0] - points[0][0]
    figures.update({"slope_mb_per_min": round(slope, 3), "growth_mb": round(growth, 2),
                    "judged_span_min": round(span_min, 2), "judged_samples": len(judged)})
    text = (f"rss {judged[0]['rss_bytes'] / MB:.1f} -> {judged[-1]['rss_bytes'] / MB:.1f} MB over "
            f"{span_min:.1f} min after warm-up: slope {slope:+.2f} MB/min, growth {growth:+.1f} MB")
    problems = []
    if slope > limits.max_slope_mb_per_min:
        problems.append(f"slope over {limits.max_slope_mb_per_min:g} MB/min")
    if growth > limits.max_growth_mb:
        problems.append(f"growth over {limits.max_growth_mb:g} MB")
    metrics = {"rss_slope_mb_per_min": round(slope, 3), "rss_growth_mb": round(growth, 2)}
    if problems:
        return (Verdict("soak.memory", Status.FAIL,
                        f"{who}: memory grows without bound under steady load: {text} ({'; '.join(problems)})",
                        metrics, figures), figures)
    return Verdict("soak.memory", Status.PASS, f"{who}: memory flat: {text}", metrics, figures), figures
