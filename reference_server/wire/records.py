"""What each vendor connection did, kept in memory for ``GET /debug/connections``.

A relay (an orchestrator between its callers and an ASR vendor) is judged on its vendor leg: how
many connections it opened per call, when its audio arrived and with what gaps, whether it kept
the connection alive in silence, how it ended. The vendor sees all of that, so the stand-in keeps
it: one record per connection, on ``time.monotonic_ns()`` (the clock the harness records its own
events on, comparable across processes on one machine) plus the wall clock.

Bounded: at most ``MAX_RECORDS`` connections (oldest dropped first); per connection the first
``MAX_FRAMES`` audio frames one by one, after that per-second buckets (frames and bytes per
second of arrival), and at most ``MAX_EVENTS`` control messages and results each (counts past the
cap are kept, so nothing is lost silently: ``dropped`` says how many were not itemized).
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


@dataclass
class ConnectionRecord:
    id: str
    protocol: str
    tag: str | None = None
    session_id: str | None = None
    opened_ns: int = field(default_factory=time.monotonic_ns)
    opened_wall: float = field(default_factory=time.time)
    closed_ns: int | None = None
    closed_wall: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    audio_bytes: int = 0
    audio_frames: int = 0
    frames: list[tuple[int, int]] = field(default_factory=list)  # (arrival ns, bytes)
    buckets: dict[int, list[int]] = field(default_factory=dict)  # second since opened -> [frames, bytes]
    controls: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=lambda: {"controls": 0, "results": 0})

    def audio(self, n_bytes: int, t_ns: int | None = None) -> None:
        t_ns = time.monotonic_ns() if t_ns is None else t_ns
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
        self.controls.append({"t_ns": time.monotonic_ns(), "type": kind, **detail})

    def result(self, *, is_final: bool, text: str) -> None:
        if len(self.results) >= MAX_EVENTS:
            self.dropped["results"] += 1
            return
        self.results.append({"t_ns": time.monotonic_ns(), "is_final": is_final, "text": text})

    def closed(self, code: int | None, reason: str | None) -> None:
        if self.closed_ns is not None:
            return  # the first close is what happened; later ones are echoes
        self.closed_ns, self.closed_wall = time.monotonic_ns(), time.time()
        self.close_code, self.close_reason = code, reason

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "protocol": self.protocol, "tag": self.tag, "session_id": self.session_id,
            "opened_ns": self.opened_ns, "opened_wall": self.opened_wall,
            "closed_ns": self.closed_ns, "closed_wall": self.closed_wall,
            "close_code": self.close_code, "close_reason": self.close_reason,
            "audio_bytes": self.audio_bytes, "audio_frames": self.audio_frames,
            "frames": [{"t_ns": t, "bytes": n} for t, n in self.frames],
            "frame_buckets": [{"second": s, "frames": f, "bytes": b} for s, (f, b) in sorted(self.buckets.items())],
            "controls": self.controls, "results": self.results, "dropped": self.dropped,
        }


class ConnectionLog:
    """The last ``limit`` connection records, in the order they opened."""

    def __init__(self, limit: int = MAX_RECORDS) -> None:
        self.limit = limit
        self._records: OrderedDict[str, ConnectionRecord] = OrderedDict()
        self._next = 0

    def open(self, protocol: str, tag: str | None = None) -> ConnectionRecord:
        self._next += 1
        record = ConnectionRecord(id=f"c{self._next}", protocol=protocol, tag=tag)
        self._records[record.id] = record
        while len(self._records) > self.limit:
            self._records.popitem(last=False)
        return record

    def list(self, *, tag: str | None = None, session: str | None = None,
             protocol: str | None = None) -> list[ConnectionRecord]:
        return [r for r in self._records.values()
                if (tag is None or r.tag == tag) and (session is None or r.session_id == session)
                and (protocol is None or r.protocol == protocol)]


