"""The recorded events of one session: every frame sent, message received and fault window.

A history is the only thing checks read. Timestamps are ``time.monotonic_ns()`` (immune to
clock steps); ``wall_t0`` is kept for display only. Histories serialize to plain JSON so that a
run directory can be re-checked and re-rendered without the backend.

Record kinds (``Record.kind``) and their ``data``:

============== ==============================================================================
``http``        ``method``, ``path``, ``status`` (None when no answer), ``latency_ms``, ``error``
``connect``     ``attempt`` (0, 1 …), ``url``, ``last_segment_id``: a connection attempt starts
``connected``   ``attempt``, ``latency_ms``: the WebSocket handshake completed
``connect_failed`` ``attempt``, ``error``, ``status`` (HTTP status of a refused handshake or None)
``audio_sent``  ``offset``, ``length``: one audio frame written (byte offsets of the stream)
``control_sent`` ``message``: a control message written (``finalize``, ``keepalive`` …)
``event``       ``event``: a received normalized event as a dict (see ``protocols.events``)
``note``        ``text`` and anything else: a harness remark, e.g. a reconnect decision
============== ==============================================================================
"""

from __future__ import annotations

import bisect
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.protocols.events import Event, Final, event_from_dict, to_dict

RECORD_KINDS = frozenset(
    {"http", "connect", "connected", "connect_failed", "audio_sent", "control_sent", "event", "note"}
)


def _uncovered(covered: list[list[int]], a: int, b: int) -> Iterator[tuple[int, int]]:
    """The parts of [a, b) that no range in ``covered`` (disjoint, sorted) contains."""
    pos = a
    for start, end in covered:  # a stream sent in order keeps this to one range
        if start >= b:
            break
        if end <= pos:
            continue
        if start > pos:
            yield pos, start
        pos = max(pos, end)
        if pos >= b:
            return
    if pos < b:
        yield pos, b


def _cover(covered: list[list[int]], a: int, b: int) -> None:
    """Add [a, b) to ``covered``, merging touching ranges."""
    merged = [a, b]
    kept = []
    for rng in covered:
        if rng[1] < merged[0] or rng[0] > merged[1]:
            kept.append(rng)
        else:
            merged = [min(merged[0], rng[0]), max(merged[1], rng[1])]
    kept.append(merged)
    kept.sort()
    covered[:] = kept


@dataclass
class Record:
    t_ns: int
    kind: str
    data: dict[str, Any]


@dataclass
class FaultWindow:
    """A fault's life: from ``start_ns`` to ``end_ns`` (None while still active)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int | None = None
    target: str = ""

    def contains(self, t_ns: int) -> bool:
        end = self.end_ns if self.end_ns is not None else float("inf")
        return self.start_ns <= t_ns <= end


@dataclass
class History:
    """Everything one session did and saw.

    ``meta`` carries what checks need to interpret it: ``fixture_id``, ``protocol``, ``target``,
    ``engine``, ``expected_text``, ``speech_onset_ms``, ``audio_bytes``, ``pace``, ``scenario``.
    """

    session_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    t0_ns: int = field(default_factory=time.monotonic_ns)
    wall_t0: float = field(default_factory=time.time)
    # (records seen, starts, first-send pieces): rebuilt when records were added since.
    _send_index: tuple[int, list[int], list[tuple[int, int, int]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # type (None: all) -> ((records seen, id of the last), its parsed events): see events()
    _events_cache: dict[str | None, tuple[tuple[int, int], list[tuple[int, Event]]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    # --- recording --------------------------------------------------------------------
    def add(self, kind: str, t_ns: int | None = None, **data: Any) -> Record:
        if kind not in RECORD_KINDS:
            raise ValueError(f"unknown history record kind {kind!r}; expected one of {sorted(RECORD_KINDS)}")
        record = Record(time.monotonic_ns() if t_ns is None else t_ns, kind, data)
        self.records.append(record)
        return record

    def add_event(self, event: Event, t_ns: int | None = None) -> Record:
        return self.add("event", t_ns=t_ns, event=to_dict(event))

    def start_fault(self, kind: str, target: str = "", **params: Any) -> FaultWindow:
        window = FaultWindow(kind=kind, params=params, start_ns=time.monotonic_ns(), target=target)
        self.faults.append(window)
        return window

    @staticmethod
    def end_fault(window: FaultWindow) -> None:
        if window.end_ns is None:
            window.end_ns = time.monotonic_ns()

    @contextlib.contextmanager
    def fault(self, kind: str, target: str = "", **params: Any) -> Iterator[FaultWindow]:
        window = self.start_fault(kind, target, **params)
        try:
            yield window
        finally:
            self.end_fault(window)

    # --- reading ----------------------------------------------------------------------
    def of_kind(self, kind: str) -> list[Record]:
        return [r for r in self.records if r.kind == kind]

    def events(self, type_: str | None = None) -> list[tuple[int, Event]]:
        """Received events in arrival order, optionally only those of one ``type``.

        Parsed once per type while no record is added: the checks ask for the finals several
        times, and on a load generator's event loop each parse of a long history is time in
        which no stream sends audio. Records are appended, never edited in place."""
        key = (len(self.records), id(self.records[-1]) if self.records else 0)
        cached = self._events_cache.get(type_)
        if cached is not None and cached[0] == key:
            return list(cached[1])
        out = []
        for r in self.records:
            if r.kind == "event" and (type_ is None or r.data["event"]["type"] == type_):
                out.append((r.t_ns, event_from_dict(r.data["event"])))
        self._events_cache[type_] = (key, out)
        return list(out)

    def finals(self) -> list[tuple[int, Final]]:
        """Every final as received, replays included (checks decide what a repeat means)."""
        return self.events("final")  # type: ignore[return-value]

    def unique_finals(self) -> list[Final]:
        """One final per segment id (the first received), ordered by segment id."""
        seen: dict[int, Final] = {}
        for _, f in self.finals():
            seen.setdefault(f.segment_id, f)
        return [seen[k] for k in sorted(seen)]

    def transcript(self) -> str:
        return " ".join(f.text for f in self.unique_finals() if f.text).strip()

    def audio_send_time(self, offset: int) -> int | None:
        """When the byte at ``offset`` was first sent (monotonic ns), or None if never.

        Answered from an index of first sends (bisect), so checks that ask once per final stay
        fast on an hour-long history; resends and duplicates never count as a first send."""
        starts, pieces = self._first_sends()
        i = bisect.bisect_right(starts, offset) - 1
        if i >= 0 and pieces[i][0] <= offset < pieces[i][1]:
            return pieces[i][2]
        return None

    def _first_sends(self) -> tuple[list[int], list[tuple[int, int, int]]]:
        if self._send_index is not None and self._send_index[0] == len(self.records):
            return self._send_index[1], self._send_index[2]
        covered: list[list[int]] = []  # disjoint, sorted [start, end) ranges already sent
        pieces: list[tuple[int, int, int]] = []  # (start, end, t_ns) of bytes sent for the first time
        for r in self.records:
            if r.kind != "audio_sent" or r.data["length"] <= 0:
                continue
            a, b = r.data["offset"], r.data["offset"] + r.data["length"]
            if not covered or a >= covered[-1][1]:  # past everything sent: the in-order stream's case
                pieces.append((a, b, r.t_ns))
                if covered and a == covered[-1][1]:
                    covered[-1][1] = b
                else:
                    covered.append([a, b])
                continue
            pieces.extend((s, e, r.t_ns) for s, e in _uncovered(covered, a, b))
            _cover(covered, a, b)
        pieces.sort()
        starts = [p[0] for p in pieces]
        self._send_index = (len(self.records), starts, pieces)
        return starts, pieces

    def ms_since_t0(self, t_ns: int) -> float:
        return (t_ns - self.t0_ns) / 1e6

    # --- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "meta": self.meta,
            "t0_ns": self.t0_ns,
            "wall_t0": self.wall_t0,
            "records": [[r.t_ns, r.kind, r.data] for r in self.records],
            "faults": [asdict(w) for w in self.faults],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            session_id=data.get("session_id"),
            meta=dict(data.get("meta", {})),
            records=[Record(t, k, d) for t, k, d in data.get("records", [])],
            faults=[FaultWindow(**w) for w in data.get("faults", [])],
            t0_ns=data.get("t0_ns", 0),
            wall_t0=data.get("wall_t0", 0.0),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls.from_dict(json.loads(text))
