"""What each vendor connection did, kept in memory for ``GET /debug/connections``.

A relay (an orchestrator between its callers and an ASR vendor) is judged on its vendor leg: how
many connections it opened per call, when its audio arrived and with what gaps, whether it kept
the connection alive in silence, how it ended. The vendor sees all of that, so the stand-in keeps
it: one record per connection, on ``time.monotonic_ns()`` (the clock the harness records its own
events on, comparable across processes on one machine) plus the wall clock.

Bounded: at most ``MAX_RECORDS`` connections (oldest dropped first); per connection the first
``MAX_FRAMES`` audio frames one by one, after that per-second buckets (frames and bytes per
second of arrival), and at most ``MAX_EVENTS`` control messages and results each (counts past the
cap are kept, so nothing is lost silently: ``dropped`` says how many were not itemized). The JSON
is the shape ``harness.vendorleg.VendorLeg.from_json`` reads (audio, controls and results as
lists of ``[t_ns, ...]``), plus wall-clock times and control details it ignores.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

MAX_RECORDS = 500
MAX_FRAMES = 5000
MAX_EVENTS = 2000
NS_PER_S = 1_000_000_000
HANDSHAKE_ACCEPTED = 101


@dataclass
class ConnectionRecord:
    """One connection. ``to_json`` is the shape ``harness.vendorleg`` parses (its docstring)."""

    id: str
    protocol: str
    path: str = ""
    tag: str | None = None
    session_id: str | None = None
    handshake_status: int = HANDSHAKE_ACCEPTED  # or the HTTP status the handshake was refused with
    opened_ns: int = field(default_factory=time.monotonic_ns)
    opened_wall: float = field(default_factory=time.time)
    closed_ns: int | None = None
    closed_wall: float | None = None
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str | None = None  # client | server
    audio_bytes: int = 0
    audio_frames: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    max_gap_ns: int = 0
    frames: list[tuple[int, int]] = field(default_factory=list)  # (arrival ns, bytes)
    buckets: dict[int, list[int]] = field(default_factory=dict)  # second since opened -> [frames, bytes]
    controls: list[tuple[int, str]] = field(default_factory=list)
    control_details: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    results: list[tuple[int, bool, str]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=lambda: {"controls": 0, "results": 0})

    def audio(self, n_bytes: int, t_ns: int | None = None) -> None:
        """An audio frame as it arrived (bytes as sent, before any conversion)."""
        t_ns = time.monotonic_ns() if t_ns is None else t_ns
        if self.last_ns is not None:
            self.max_gap_ns = max(self.max_gap_ns, t_ns - self.last_ns)
        if self.first_ns is None:
            self.first_ns = t_ns
        self.last_ns = t_ns
        self.audio_bytes += n_bytes
        self.audio_frames += 1
        if len(self.frames) < MAX_FRAMES:
            self.frames.append((t_ns, n_bytes))
            return
        second = (t_ns - self.opened_ns) // NS_PER_S
        bucket = self.buckets.setdefault(second, [0, 0])
        bucket[0] += 1
        bucket[1] += n_bytes

    def control(self, kind: str, **detail: Any) -> None:
        if len(self.controls) >= MAX_EVENTS:
            self.dropped["controls"] += 1
            return
        t_ns = time.monotonic_ns()
        self.controls.append((t_ns, kind))
        if detail:
            self.control_details.append((t_ns, kind, detail))

    def result(self, *, is_final: bool, text: str) -> None:
        if len(self.results) >= MAX_EVENTS:
            self.dropped["results"] += 1
            return
        self.results.append((time.monotonic_ns(), is_final, text))

    def refused(self, status: int) -> None:
        self.handshake_status = status
        self.closed(None, f"handshake refused: HTTP {status}", by="server")

    def closed(self, code: int | None, reason: str | None, *, by: str = "server") -> None:
        if self.closed_ns is not None:
            return  # the first close is what happened; later ones are echoes
        self.closed_ns, self.closed_wall = time.monotonic_ns(), time.time()
        self.close_code, self.close_reason, self.closed_by = code, reason or "", by

    def to_json(self) -> dict[str, Any]:
        return {
            "conn_id": self.id, "protocol": self.protocol, "path": self.path, "tag": self.tag,
            "session_id": self.session_id, "handshake_status": self.handshake_status,
            "opened_ns": self.opened_ns, "opened_wall": self.opened_wall,
            "closed_ns": self.closed_ns, "closed_wall": self.closed_wall,
            "close_code": self.close_code, "close_reason": self.close_reason, "closed_by": self.closed_by,
            "audio": {"frames": [[t, n] for t, n in self.frames], "total_frames": self.audio_frames,
                      "total_bytes": self.audio_bytes, "first_ns": self.first_ns, "last_ns": self.last_ns,
                      "max_gap_ns": self.max_gap_ns,
                      "buckets": [[self.opened_ns + s * NS_PER_S, f, b] for s, (f, b) in sorted(self.buckets.items())]},
            "controls": [[t, k] for t, k in self.controls],
            "control_details": [[t, k, d] for t, k, d in self.control_details],
            "results": [[t, f, x] for t, f, x in self.results],
            "faults": [], "dropped": self.dropped,
        }


class ConnectionLog:
    """The last ``limit`` connection records, in the order they opened."""

    def __init__(self, limit: int = MAX_RECORDS) -> None:
        self.limit = limit
        self._records: OrderedDict[str, ConnectionRecord] = OrderedDict()
        self._next = 0

    def open(self, protocol: str, tag: str | None = None, path: str = "") -> ConnectionRecord:
        self._next += 1
        record = ConnectionRecord(id=f"c-{self._next}", protocol=protocol, tag=tag, path=path)
        self._records[record.id] = record
        while len(self._records) > self.limit:
            self._records.popitem(last=False)
        return record

    def list(self, *, tag: str | None = None, session: str | None = None,
             protocol: str | None = None) -> list[ConnectionRecord]:
        return [r for r in self._records.values()
                if (tag is None or r.tag == tag) and (session is None or r.session_id == session)
                and (protocol is None or r.protocol == protocol)]


