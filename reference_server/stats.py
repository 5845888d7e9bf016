"""Server figures for /health, /v1/stats and /metrics (Prometheus, in its own CollectorRegistry).

Counts here are true counts kept at the point where things happen (a connection opened and
closed, a session created, a final sent); /health and /metrics read the same numbers.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .timefmt import iso

HIGH_LATENCY_MS = 1000.0  # a final or a session creation slower than this is a warning
HOUR_S = 3600.0


@dataclass
class Alert:
    type: str
    severity: str
    count: int = 0
    last_occurrence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "severity": self.severity, "count": self.count,
                "last_occurrence": iso(self.last_occurrence)}


def p95(samples: list[float]) -> float:
    """Nearest-rank 95th percentile (0.0 with no samples)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return float(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)])


class Stats:
    def __init__(self) -> None:
        self.started_mono = time.monotonic()
        self.ws_open = 0
        self.ws_opened_total = 0
        self.sessions_created_total = 0
        self._creation_sum_ms = 0.0
        self._final_latency_ms: deque[float] = deque(maxlen=2000)
        self._failed_at: deque[float] = deque()
        self._loop_lag_ms: deque[float] = deque(maxlen=600)  # the last minute at 10 samples a second
        self.high_latency_warnings = 0
        self.alerts: dict[str, Alert] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.creation_hist = Histogram(
            "reference_session_creation_seconds", "Time to create a session (POST /v1/sessions)",
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.final_hist = Histogram(
            "reference_final_latency_seconds", "Audio received to its final sent",
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        # per wire protocol (deepgram, openai-realtime, assemblyai, speechmatics): what each vendor
        # endpoint was asked for
        self.protocol_connections = Counter(
            "reference_protocol_connections", "Connections to a vendor endpoint, by protocol", ["protocol"],
            registry=self.registry)
        self.protocol_audio_bytes = Counter(
            "reference_protocol_audio_bytes", "Audio bytes received on vendor endpoints (as sent), by protocol",
            ["protocol"], registry=self.registry)

    def protocol_connection(self, protocol: str) -> None:
        self.protocol_connections.labels(protocol=protocol).inc()

    def protocol_audio(self, protocol: str, n_bytes: int) -> None:
        self.protocol_audio_bytes.labels(protocol=protocol).inc(n_bytes)

    @property
    def uptime_s(self) -> int:
        return int(time.monotonic() - self.started_mono)

    def alert(self, type_: str, severity: str) -> None:
        a = self.alerts.setdefault(type_, Alert(type_, severity))
        a.count += 1
        a.last_occurrence = time.time()

    def ws_opened(self) -> None:
        self.ws_open += 1
        self.ws_opened_total += 1

    def ws_closed(self) -> None:
        self.ws_open -= 1

    def session_created(self, ms: float) -> None:
        self.sessions_created_total += 1
        self._creation_sum_ms += ms
        self.creation_hist.observe(ms / 1000)
        if ms > HIGH_LATENCY_MS:
            self.high_latency_warnings += 1
            self.alert("slow_session_creation", "warning")

    def final_sent(self, latency_ms: float) -> None:
        self._final_latency_ms.append(latency_ms)
        self.final_hist.observe(latency_ms / 1000)
        if latency_ms > HIGH_LATENCY_MS:
            self.high_latency_warnings += 1
            self.alert("high_final_latency", "warning")

    def session_failed(self) -> None:
        self._failed_at.append(time.time())
        self.alert("session_failed", "warning")

    def failed_last_hour(self) -> int:
        cutoff = time.time() - HOUR_S
        while self._failed_at and self._failed_at[0] < cutoff:
            self._failed_at.popleft()
        return len(self._failed_at)

    def loop_lag(self, ms: float) -> None:
        self._loop_lag_ms.append(ms)

    @property
    def loop_lag_p95_ms(self) -> float:
        return round(p95(list(self._loop_lag_ms)), 3)

    @property
    def loop_lag_max_ms(self) -> float:
        return round(max(self._loop_lag_ms, default=0.0), 3)

    @property
    def avg_session_creation_ms(self) -> float:
        n = self.sessions_created_total
        return round(self._creation_sum_ms / n, 3) if n else 0.0

    @property
    def p95_final_latency_ms(self) -> float:
        return round(p95(list(self._final_latency_ms)), 3)


class StatsCollector:
    """Feeds the registry the current figures at scrape time (gauges and counters by name)."""

    def __init__(self, figures: Callable[[], dict[str, tuple[str, str, float]]]) -> None:
        self._figures = figures  # name -> (kind "gauge"|"counter", help, value)

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        for name, (kind, help_text, value) in self._figures().items():
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, help_text, value=value)

    def describe(self):  # noqa: ANN201 - lets auto_describe skip calling collect() at register time
        return []
