"""The server's parts (store, tracker, stats, session manager, connection log), built once per
process and shared by the HTTP routes and every stream endpoint (``ServerState``)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from . import __version__
from .config import ServerConfig
from .sessions import SessionManager
from .stats import Stats, StatsCollector
from .store import Store
from .tracker import Tracker
from .wire.records import ConnectionLog

log = logging.getLogger("reference_server")


@dataclass
class ServerState:
    config: ServerConfig
    store: Store
    tracker: Tracker
    stats: Stats
    manager: SessionManager
    connections: ConnectionLog = field(default_factory=ConnectionLog)  # vendor connections, /debug/connections
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    listeners: dict[str, asyncio.Server] = field(default_factory=dict)  # name -> TCP listener (wyoming_tcp)

    @classmethod
    def build(cls, config: ServerConfig) -> ServerState:
        store = Store(config.db_path)
        tracker = Tracker(store, config.stall_after_s, detect_stalls="no-stall-detection" not in config.defects)
        stats = Stats()
        state = cls(config=config, store=store, tracker=tracker, stats=stats,
                     manager=SessionManager(config, store, tracker, stats))
        stats.registry.register(StatsCollector(state.metric_figures))
        return state

    async def start(self) -> None:
        await self.manager.recover()
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._stall_sweep()))
        self.tasks.append(loop.create_task(self._loop_lag_probe()))
        if self.config.wyoming_port is not None:
            from .wire.tcp import start_listener
            from .wire.wyoming import WyomingTcpAdapter

            self.listeners["wyoming_tcp"] = await start_listener(
                self, WyomingTcpAdapter, self.config.host, self.config.wyoming_port, "tcp:wyoming")

    def listener_urls(self) -> dict[str, str]:
        """name -> tcp://host:port of each TCP listener (for the startup line and /health)."""
        out = {}
        for name, server in self.listeners.items():
            host, port = server.sockets[0].getsockname()[:2]
            out[name] = f"tcp://{f'[{host}]' if ':' in host else host}:{port}"
        return out

    def close_listeners(self) -> None:
        """No new TCP connections (those open are closed with the streams)."""
        for server in self.listeners.values():
            server.close()

    async def stop(self) -> None:
        self.close_listeners()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.manager.shutdown()
        self.store.close()

    async def _stall_sweep(self) -> None:
        while True:
            await asyncio.sleep(self.config.stall_check_interval_s)
            try:
                for _ in self.tracker.check_stalls():
                    pass
            except Exception:  # noqa: BLE001 - the sweep must outlive one bad pass
                log.exception("stall sweep failed")

    async def _loop_lag_probe(self) -> None:
        """How late the event loop wakes up: every ack and frame waits that long on top of its work."""
        period = 0.1
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(period)
            self.stats.loop_lag(max(0.0, (time.perf_counter() - t0 - period) * 1000))

    # --- figures -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        active_sessions = self.store.count_active()
        stalled = self.tracker.stalled_count
        connections = self.stats.ws_open
        if "health-lies" in self.config.defects:
            connections = self.stats.ws_opened_total  # defect health-lies: never decremented
        degraded = stalled > 0 or active_sessions >= self.config.max_sessions
        return {
            "status": "degraded" if degraded else "ok",
            "version": __version__,
            "engine": self.config.engine,
            "uptime_s": self.stats.uptime_s,
            "active_connections": int(connections),
            "active_sessions": int(active_sessions),
            "active_buffers": int(self.manager.active_buffers()),
            "stalled_transactions": int(stalled),
            "rss_bytes": int(psutil.Process(os.getpid()).memory_info().rss),
            "listeners": self.listener_urls(),
        }

    def stats_body(self) -> dict[str, Any]:
        alerts = [a.to_dict() for a in self.stats.alerts.values()]
        if self.tracker.stall_alerts and self.tracker.last_stall_at is not None:
            from .timefmt import iso

            alerts.append({"type": "stalled_transaction", "severity": "critical",
                           "count": self.tracker.stall_alerts, "last_occurrence": iso(self.tracker.last_stall_at),
                           "active": self.tracker.stalled_count})
        return {
            "websocket_connections": self.stats.ws_open,
            "sessions_created_total": self.stats.sessions_created_total,
            "sessions_failed_last_hour": self.stats.failed_last_hour(),
            "avg_session_creation_ms": self.stats.avg_session_creation_ms,
            "p95_final_latency_ms": self.stats.p95_final_latency_ms,
            "high_latency_warnings": self.stats.high_latency_warnings,
            "stalled_transactions": self.tracker.stalled_count,
            "invalid_transitions": self.tracker.invalid_transitions,
            "loop_lag_p95_ms": self.stats.loop_lag_p95_ms,
            "loop_lag_max_ms": self.stats.loop_lag_max_ms,
            "alerts": alerts,
        }

    def metric_figures(self) -> dict[str, tuple[str, str, float]]:
        h = self.health()
        s = self.stats
        return {
            "reference_up": ("gauge", "1 while the server runs", 1),
            "reference_uptime_seconds": ("gauge", "Seconds since start", h["uptime_s"]),
            "reference_websocket_connections": ("gauge", "Open stream connections", s.ws_open),
            "reference_active_connections": ("gauge", "Open connections as /health reports them",
                                             h["active_connections"]),
            "reference_active_sessions": ("gauge", "Sessions not completed, failed or deleted", h["active_sessions"]),
            "reference_active_buffers": ("gauge", "Sessions holding audio or an engine in memory",
                                         h["active_buffers"]),
            "reference_stalled_transactions": ("gauge", "Pipeline transactions with no progress",
                                               h["stalled_transactions"]),
            "reference_rss_bytes": ("gauge", "Resident set size of the server process", h["rss_bytes"]),
            "reference_sessions_created": ("counter", "Sessions created", s.sessions_created_total),
            "reference_sessions_failed_last_hour": ("gauge", "Sessions failed in the last hour",
                                                    s.failed_last_hour()),
            "reference_high_latency_warnings": ("counter", "Finals or creations slower than 1 s",
                                                s.high_latency_warnings),
            "reference_stall_alerts": ("counter", "Transactions marked stalled", self.tracker.stall_alerts),
            "reference_invalid_transitions": ("counter", "Refused state transitions",
                                              self.tracker.invalid_transitions),
            "reference_avg_session_creation_ms": ("gauge", "Mean session creation time", s.avg_session_creation_ms),
            "reference_p95_final_latency_ms": ("gauge", "p95 of recent final latencies", s.p95_final_latency_ms),
            "reference_loop_lag_p95_ms": ("gauge", "p95 event loop wake-up delay, last minute", s.loop_lag_p95_ms),
        }
