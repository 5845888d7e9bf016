"""The vendor leg: what a relay under test did to the vendor it streams to.

The reference server, playing the vendor (Deepgram, OpenAI Realtime, AssemblyAI, Speechmatics),
records every connection made to it and serves the record at ``GET /debug/connections``; the fault
proxy in front of it adds what the server never sees (handshakes it refused, faults it fired).
This module is the harness's side of that record: plain data parsed from JSON, and the few
queries checks ask of it. Checks stay pure: they get a :class:`VendorLeg` and a client
:class:`~harness.history.History`, never a socket.

Times are ``time.monotonic_ns()``: one system-wide clock on Linux, so the server's, the proxy's
and the harness's times compare directly on one machine.

The JSON shape (one object per connection, under ``"connections"``)::

    {"conn_id": "c-3", "protocol": "deepgram", "path": "/v1/listen", "tag": "s-1" | null,
     "session_id": "…" | null, "handshake_status": 101, "opened_ns": 1, "closed_ns": 9 | null,
     "close_code": 1000 | null, "close_reason": "", "closed_by": "client" | "server" | "proxy" | null,
     "audio": {"frames": [[t_ns, bytes], …], "total_frames": N, "total_bytes": B,
               "first_ns": t | null, "last_ns": t | null, "max_gap_ns": g,
               "buckets": [[second_start_ns, frames, bytes], …]},
     "controls": [[t_ns, "KeepAlive"], …],
     "results": [[t_ns, is_final, "text"], …],
     "faults": [FaultWindow as a dict, …]}

``audio.frames`` is capped: past the cap, frames are counted in per-second ``buckets`` instead, and
``max_gap_ns`` / the totals still cover every frame, so a one-hour stream stays small.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.history import FaultWindow

HANDSHAKE_ACCEPTED = 101


class VendorLegError(ValueError):
    """A vendor-leg record that does not have the documented shape; the message names the field."""


@dataclass
class AudioLog:
    """The audio frames one connection received: exact times up to a cap, then per-second counts."""

    frames: list[tuple[int, int]] = field(default_factory=list)
    total_frames: int = 0
    total_bytes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    max_gap_ns: int = 0
    buckets: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.total_frames > len(self.frames)

    def largest_gap_ns(self, start_ns: int | None = None, end_ns: int | None = None) -> int:
        """The largest time between consecutive frames that arrived within [start, end].

        Exact while the frame list is complete; past the cap, the whole connection's
        ``max_gap_ns`` is the best answer there is (an upper bound for any window)."""
        if self.truncated:
            return self.max_gap_ns
        times = [t for t, _ in self.frames
                 if (start_ns is None or t >= start_ns) and (end_ns is None or t <= end_ns)]
        return max((b - a for a, b in zip(times, times[1:])), default=0)

    def bytes_between(self, start_ns: int, end_ns: int) -> int:
        return sum(n for t, n in self.frames if start_ns <= t <= end_ns)


@dataclass
class VendorConnection:
    """One connection to the vendor side, as the vendor (and the proxy before it) saw it."""

    conn_id: str
    protocol: str
    path: str = ""
    tag: str | None = None
    session_id: str | None = None
    handshake_status: int = HANDSHAKE_ACCEPTED
    opened_ns: int = 0
    closed_ns: int | None = None
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str | None = None
    audio: AudioLog = field(default_factory=AudioLog)
    controls: list[tuple[int, str]] = field(default_factory=list)
    results: list[tuple[int, bool, str]] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.handshake_status == HANDSHAKE_ACCEPTED

    def open_at(self, t_ns: int) -> bool:
        return self.opened_ns <= t_ns and (self.closed_ns is None or t_ns < self.closed_ns)

    def overlaps(self, other: VendorConnection) -> bool:
        """Both connections were open at one instant (accepted ones only)."""
        if not (self.accepted and other.accepted):
            return False
        end_a = self.closed_ns if self.closed_ns is not None else float("inf")
        end_b = other.closed_ns if other.closed_ns is not None else float("inf")
        return self.opened_ns < end_b and other.opened_ns < end_a

    def control_times(self, name: str) -> list[int]:
        return [t for t, n in self.controls if n == name]

    def final_texts(self) -> list[str]:
        return [text for _, is_final, text in self.results if is_final and text]


@dataclass
class VendorLeg:
    """Every vendor connection of a run, in order of opening."""

    connections: list[VendorConnection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connections.sort(key=lambda c: c.opened_ns)

    def with_tag(self, tag: str) -> list[VendorConnection]:
        return [c for c in self.connections if c.tag == tag]

    def for_session(self, session_id: str) -> list[VendorConnection]:
        return [c for c in self.connections if c.session_id == session_id]

    def accepted(self) -> list[VendorConnection]:
        return [c for c in self.connections if c.accepted]

    def opened_between(self, start_ns: int, end_ns: int) -> list[VendorConnection]:
        """Connections (accepted or refused) whose handshake started in [start, end]: the
        correlation by time for a relay that passes no tag."""
        return [c for c in self.connections if start_ns <= c.opened_ns <= end_ns]

    def merge(self, other: VendorLeg) -> VendorLeg:
        """One record from the server's and the proxy's: a connection both saw (same
        ``conn_id``) keeps the server's audio, controls and results and gains the proxy's faults
        and handshake refusal; one only the proxy saw (a refused handshake) is kept as it is."""
        by_id = {c.conn_id: c for c in self.connections}
        merged = list(self.connections)
        for c in other.connections:
            mine = by_id.get(c.conn_id)
            if mine is None:
                merged.append(c)
                continue
            mine.faults.extend(c.faults)
            if not c.accepted:
                mine.handshake_status = c.handshake_status
            if mine.closed_by is None:
                mine.closed_by = c.closed_by
        return VendorLeg(merged)

    # --- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"connections": [_connection_to_dict(c) for c in self.connections]}

    @classmethod
    def from_dict(cls, data: Any) -> VendorLeg:
        if not isinstance(data, dict) or not isinstance(data.get("connections"), list):
            raise VendorLegError('a vendor-leg record is an object with a "connections" list')
        return cls([_connection_from_dict(i, c) for i, c in enumerate(data["connections"])])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> VendorLeg:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VendorLegError(f"a vendor-leg record must be JSON: {exc}") from exc
        return cls.from_dict(data)


def _connection_to_dict(c: VendorConnection) -> dict[str, Any]:
    out = asdict(c)
    out["audio"]["frames"] = [list(f) for f in c.audio.frames]
    out["audio"]["buckets"] = [list(b) for b in c.audio.buckets]
    out["controls"] = [list(x) for x in c.controls]
    out["results"] = [list(x) for x in c.results]
    return out


def _need(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    if key not in d or (optional and d[key] is None):
        if optional:
            return None
        raise VendorLegError(f"{where}: missing field {key!r}")
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, (int, float)):
        raise VendorLegError(f"{where}: field {key!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _connection_from_dict(index: int, d: Any) -> VendorConnection:
    where = f"connections[{index}]"
    if not isinstance(d, dict):
        raise VendorLegError(f"{where}: must be an object, got {type(d).__name__}")
    audio_d = d.get("audio") or {}
    if not isinstance(audio_d, dict):
        raise VendorLegError(f"{where}: field 'audio' must be an object")
    try:
        audio = AudioLog(
            frames=[(int(t), int(n)) for t, n in audio_d.get("frames", [])],
            total_frames=int(audio_d.get("total_frames", len(audio_d.get("frames", [])))),
            total_bytes=int(audio_d.get("total_bytes", sum(n for _, n in audio_d.get("frames", [])))),
            first_ns=audio_d.get("first_ns"),
            last_ns=audio_d.get("last_ns"),
            max_gap_ns=int(audio_d.get("max_gap_ns", 0)),
            buckets=[(int(t), int(f), int(b)) for t, f, b in audio_d.get("buckets", [])],
        )
        controls = [(int(t), str(name)) for t, name in d.get("controls", [])]
        results = [(int(t), bool(final), str(text)) for t, final, text in d.get("results", [])]
        faults = [FaultWindow(**w) for w in d.get("faults", [])]
    except (TypeError, ValueError) as exc:
        raise VendorLegError(f"{where}: malformed audio, controls, results or faults: {exc}") from exc
    return VendorConnection(
        conn_id=str(_need(d, "conn_id", (str, int), where)),
        protocol=_need(d, "protocol", str, where),
        path=d.get("path") or "",
        tag=_need(d, "tag", str, where, optional=True),
        session_id=_need(d, "session_id", str, where, optional=True),
        handshake_status=int(d.get("handshake_status", HANDSHAKE_ACCEPTED)),
        opened_ns=_need(d, "opened_ns", int, where),
        closed_ns=_need(d, "closed_ns", int, where, optional=True),
        close_code=_need(d, "close_code", int, where, optional=True),
        close_reason=d.get("close_reason") or "",
        closed_by=d.get("closed_by"),
        audio=audio,
        controls=controls,
        results=results,
        faults=faults,
    )
