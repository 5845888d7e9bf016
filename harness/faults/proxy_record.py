"""The fault proxy's record of what it did, per connection: the handshake's status, the faults
fired (FaultWindows, monotonic ns), messages relayed and dropped each way, audio bytes, results.

Bounded memory: a connection keeps counters, not a list per message, so an hour-long stream
costs the same as a short one; its fault windows are the faults its schedule fired on it (a
fixed number per step); the proxy keeps the last ``max_connections`` records and counts the
rest. A record also serves as a trigger's progress (audio received, results sent, finalize seen).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.faults import vendors
from harness.history import FaultWindow
from harness.vendorleg import VendorConnection, VendorLeg

# The protocol names the reference server's vendor-leg record uses, by stream path.
PROTOCOL_OF_PATH = {"/v1/stream": "reference", "/v1/listen": "deepgram", "/v1/realtime": "openai-realtime",
                    "/v3/ws": "assemblyai", "/v2": "speechmatics"}

MAX_FAULTS_PER_CONNECTION = 256  # a rule fires once per step; this only stops a runaway schedule


@dataclass
class ConnectionRecord:
    index: int  # 1-based, in order of arrival at the proxy
    path: str = ""
    tags: list[str] = field(default_factory=list)
    opened_ns: int = field(default_factory=time.monotonic_ns)
    handshake_status: int | None = None  # 101 accepted; the refusal's status; 502 upstream unreachable
    accepted_ns: int | None = None  # the upstream accepted (so the vendor opened it between opened_ns and this)
    closed_ns: int | None = None
    close_code: int | None = None  # what the client's side of the connection was closed with
    close_reason: str | None = None
    upstream_close_code: int | None = None
    faults: list[FaultWindow] = field(default_factory=list)
    faults_dropped: int = 0
    frames: dict[str, int] = field(default_factory=dict)  # "<direction>_<received|sent|dropped>"
    audio_bytes: int = 0  # audio received from the client
    bytes_per_ms: int = 32
    results: int = 0  # transcript results from the server
    finals: int = 0
    finalized: bool = False  # the client asked to flush or end

    # --- what triggers read ------------------------------------------------------------------
    @property
    def elapsed_ms(self) -> float:
        return (time.monotonic_ns() - self.opened_ns) / 1e6

    # --- recording ---------------------------------------------------------------------------
    def start_fault(self, kind: str, target: str = "", **params: Any) -> FaultWindow:
        """The same call as History.start_fault, so a rule records into either."""
        window = FaultWindow(kind=kind, params=params, start_ns=time.monotonic_ns(), target=target)
        if len(self.faults) < MAX_FAULTS_PER_CONNECTION:
            self.faults.append(window)
        else:
            self.faults_dropped += 1
        return window

    def count(self, direction: str, what: str, n: int = 1) -> None:
        key = f"{direction}_{what}"
        self.frames[key] = self.frames.get(key, 0) + n

    def received(self, direction: str, data: str | bytes, obj: dict[str, Any] | None) -> None:
        self.count(direction, "received")
        if direction == "upstream":
            self.audio_bytes += vendors.audio_bytes(data, obj)
            if obj is not None:
                self.finalized = self.finalized or vendors.is_finalize(obj)
                self.bytes_per_ms = vendors.bytes_per_ms_of_message(obj) or self.bytes_per_ms
        elif obj is not None and vendors.is_result(obj):
            self.results += 1
            if vendors.is_final(obj):
                self.finals += 1

    def closed(self, code: int | None, reason: str | None, upstream_code: int | None) -> None:
        if self.closed_ns is None:  # the first word on the client's side stands (a fault's close, say)
            self.closed_ns = time.monotonic_ns()
            self.close_code, self.close_reason = code, reason
        if self.upstream_close_code is None:
            self.upstream_close_code = upstream_code

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["faults"] = [asdict(w) for w in self.faults]
        return out

    def vendor_connection(self, conn_id: str | None = None) -> VendorConnection:
        """This connection as the vendor-leg type (what the proxy knows of it: no audio log)."""
        by_fault = bool(self.faults) and any(w.params.get("code") == self.close_code or w.kind == "cut"
                                             for w in self.faults)
        return VendorConnection(
            conn_id=conn_id or f"proxy-{self.index}", protocol=PROTOCOL_OF_PATH.get(self.path, "unknown"),
            path=self.path, tag=self.tags[0] if self.tags else None,
            handshake_status=self.handshake_status if self.handshake_status is not None else 0,
            opened_ns=self.opened_ns, closed_ns=self.closed_ns, close_code=self.close_code,
            close_reason=self.close_reason or "", closed_by="proxy" if by_fault else None,
            faults=list(self.faults))


class ProxyRecord:
    """Every connection's record, the last ``max_connections`` of them; the totals of the ones
    let go are kept for the metrics (:meth:`metrics`)."""

    def __init__(self, max_connections: int = 1000):
        self.connections: deque[ConnectionRecord] = deque(maxlen=max_connections)
        self.total = 0
        self._gone: dict[tuple[str, ...], int] = {}  # (metric, protocol[, fault]) -> count of evicted records

    def open(self, path: str, tags: list[str], bytes_per_ms: int = 32) -> ConnectionRecord:
        self.total += 1
        rec = ConnectionRecord(self.total, path, tags, bytes_per_ms=bytes_per_ms)
        if len(self.connections) == self.connections.maxlen:
            for key, n in _counts(self.connections[0]).items():
                self._gone[key] = self._gone.get(key, 0) + n
        self.connections.append(rec)
        return rec

    def metrics(self) -> dict[tuple[str, ...], int]:
        """Totals since the proxy started: ``("connections", protocol)``, ``("refused", protocol)``,
        ``("audio_bytes", protocol)``, ``("faults", protocol, fault)``."""
        out = dict(self._gone)
        for rec in self.connections:
            for key, n in _counts(rec).items():
                out[key] = out.get(key, 0) + n
        return out

    def prometheus(self) -> bytes:
        """The metrics in Prometheus' text format (``GET <proxy>/_faults/metrics``)."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily

        record = self

        class _Collector:
            def collect(self):  # noqa: ANN202 - prometheus_client's collector protocol
                families = {
                    "connections": CounterMetricFamily("fault_proxy_connections", "connections through the fault proxy",
                                                       labels=["protocol"]),
                    "refused": CounterMetricFamily("fault_proxy_handshakes_refused",
                                                   "handshakes refused (by a fault or the upstream)", labels=["protocol"]),
                    "audio_bytes": CounterMetricFamily("fault_proxy_audio_bytes", "audio bytes received from clients",
                                                       labels=["protocol"]),
                    "faults": CounterMetricFamily("fault_proxy_faults_fired", "faults fired, by type",
                                                  labels=["protocol", "fault"]),
                }
                for (metric, *labels), n in sorted(record.metrics().items()):
                    families[metric].add_metric(labels, n)
                yield from families.values()

        registry = CollectorRegistry()
        registry.register(_Collector())
        return generate_latest(registry)


    def get(self, index: int) -> ConnectionRecord | None:
        return next((r for r in self.connections if r.index == index), None)

    def to_dict(self, tag: str | None = None) -> dict[str, Any]:
        rows = [r.to_dict() for r in self.connections if tag is None or tag in r.tags]
        return {"connections_total": self.total, "connections_kept": len(self.connections), "connections": rows}

    def merged_into(self, server: VendorLeg) -> VendorLeg:
        """One vendor-leg history per connection: the server's record (audio, controls, results)
        with the proxy's faults and its refused handshakes (which never reached the server).

        A proxy connection is the server connection of the same protocol that the server opened
        while the proxy's upstream handshake was under way (between the client's request and the
        upstream's answer: one monotonic clock on one machine); each server connection is taken
        once, earliest first. A connection the server never saw is kept as the proxy saw it."""
        taken: set[str] = set()
        ours: list[VendorConnection] = []
        for rec in self.connections:
            match = None
            if rec.accepted_ns is not None:
                protocol = PROTOCOL_OF_PATH.get(rec.path, "unknown")
                match = next((c for c in server.connections
                              if c.conn_id not in taken and c.protocol == protocol
                              and rec.opened_ns <= c.opened_ns <= rec.accepted_ns), None)
            if match is not None:
                taken.add(match.conn_id)
            ours.append(rec.vendor_connection(match.conn_id if match is not None else None))
        return server.merge(VendorLeg(ours))


def _counts(rec: ConnectionRecord) -> dict[tuple[str, ...], int]:
    protocol = PROTOCOL_OF_PATH.get(rec.path, "unknown")
    out: dict[tuple[str, ...], int] = {("connections", protocol): 1, ("audio_bytes", protocol): rec.audio_bytes}
    if rec.handshake_status not in (None, 101):
        out[("refused", protocol)] = 1
    for w in rec.faults:
        out[("faults", protocol, w.kind)] = out.get(("faults", protocol, w.kind), 0) + 1
    return out


__all__ = ["ConnectionRecord", "ProxyRecord"]
