"""The pipeline tracker: one transaction per session, with its stage events and stall detection.

A transaction is *stalled* when the server owes the session work (engine output for audio it has
taken, or the post-processing pipeline) and has made no progress for ``stall_after_s``. A session
that is merely waiting for its client (created, interrupted, streaming with nothing pending) is not
stalled: that is the client's silence, not the server's, and counting it would make /health
report "degraded" after every abandoned connection.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .store import Store
from .timefmt import iso

log = logging.getLogger("reference_server.tracker")

ACTIVE, STALLED, ENDED = "active", "stalled", "ended"
KEEP_ENDED = 500  # ended transactions kept in memory for /debug/transactions


@dataclass
class Transaction:
    session_id: str
    started_at: float  # wall clock, for display
    status: str = ACTIVE
    stage: str = "created"
    last_progress_at: float = 0.0  # wall clock
    last_progress_mono: float = 0.0
    stalled_since: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    waiting_on: set[str] = field(default_factory=set)  # what the server owes: "engine", "pipeline"
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "stage": self.stage,
            "waiting_on": sorted(self.waiting_on),
            "started_at": iso(self.started_at),
            "last_progress_at": iso(self.last_progress_at),
            "stalled_since": iso(self.stalled_since) if self.stalled_since else None,
            "ended_at": iso(self.ended_at) if self.ended_at else None,
            "end_reason": self.end_reason,
            "events": [{"stage": e["stage"], "at": iso(e["at"]), "data": e["data"]} for e in self.events],
        }


class Tracker:
    def __init__(self, store: Store, stall_after_s: float, *, detect_stalls: bool = True) -> None:
        self.store = store
        self.stall_after_s = stall_after_s
        self.detect_stalls = detect_stalls
        self._tx: dict[str, Transaction] = {}
        self._ended: OrderedDict[str, Transaction] = OrderedDict()
        self.invalid_transitions = 0
        self.stall_alerts = 0
        self.last_stall_at: float | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def load_open(self) -> None:
        """Re-open the transactions of sessions that were not ended when the process stopped."""
        now_wall, now_mono = time.time(), time.monotonic()
        for row in self.store.open_transactions():
            tx = Transaction(session_id=row["session_id"], started_at=row["started_at"],
                             last_progress_at=now_wall, last_progress_mono=now_mono)
            tx.events = self.store.stage_events(row["session_id"])
            tx.stage = tx.events[-1]["stage"] if tx.events else "created"
            self._tx[tx.session_id] = tx

    def begin(self, session_id: str) -> None:
        now = time.time()
        tx = Transaction(session_id=session_id, started_at=now, last_progress_at=now,
                         last_progress_mono=time.monotonic())
        self._tx[session_id] = tx
        self.stage(session_id, "created")

    def get(self, session_id: str) -> Transaction | None:
        return self._tx.get(session_id) or self._ended.get(session_id)

    def stage(self, session_id: str, stage: str, **data: Any) -> None:
        """Record a stage event (persisted); it counts as progress."""
        tx = self._tx.get(session_id)
        if tx is None:
            return
        now = time.time()
        self._progress(tx, now)
        tx.stage = stage
        tx.events.append({"stage": stage, "at": now, "data": data})
        self._persist(tx, (stage, now, data))

    def progress(self, session_id: str) -> None:
        """Progress without a stage event (engine output): resets the stall clock, not persisted."""
        tx = self._tx.get(session_id)
        if tx is not None:
            self._progress(tx, time.time())

    def waiting(self, session_id: str, what: str, on: bool) -> None:
        tx = self._tx.get(session_id)
        if tx is None:
            return
        if on and what not in tx.waiting_on:
            tx.waiting_on.add(what)
            self._progress(tx, time.time())  # the stall clock starts when the work is owed
        elif not on:
            tx.waiting_on.discard(what)

    def invalid_transition(self, session_id: str, current: str, target: str) -> None:
        self.invalid_transitions += 1
        log.warning("session %s: invalid transition %s -> %s refused", session_id, current, target)
        tx = self._tx.get(session_id)
        if tx is not None:
            now = time.time()
            tx.events.append({"stage": "invalid_transition", "at": now, "data": {"from": current, "to": target}})
            self.store.add_stage_event(session_id, "invalid_transition", now, {"from": current, "to": target})

    def end(self, session_id: str, reason: str) -> None:
        tx = self._tx.pop(session_id, None)
        if tx is None:
            return
        now = time.time()
        tx.events.append({"stage": "ended", "at": now, "data": {"reason": reason}})
        tx.stage, tx.status, tx.ended_at, tx.end_reason = "ended", ENDED, now, reason
        tx.waiting_on.clear()
        self._persist(tx, ("ended", now, {"reason": reason}))
        self._ended[session_id] = tx
        while len(self._ended) > KEEP_ENDED:
            self._ended.popitem(last=False)

    # --- stall detection -----------------------------------------------------------------
    def check_stalls(self) -> list[str]:
        """Mark transactions with owed work and no progress for stall_after_s; returns new ones."""
        if not self.detect_stalls:  # defect no-stall-detection: the sweep runs but never marks
            return []
        now_mono, now = time.monotonic(), time.time()
        newly = []
        for tx in self._tx.values():
            if tx.status == ACTIVE and tx.waiting_on and now_mono - tx.last_progress_mono > self.stall_after_s:
                tx.status, tx.stalled_since = STALLED, now
                self.stall_alerts += 1
                self.last_stall_at = now
                idle = round(now_mono - tx.last_progress_mono, 3)
                data = {"waiting_on": sorted(tx.waiting_on), "idle_s": idle}
                tx.events.append({"stage": "stalled", "at": now, "data": data})
                self._persist(tx, ("stalled", now, data))
                newly.append(tx.session_id)
                log.warning("session %s: transaction stalled at stage %s", tx.session_id, tx.stage)
        return newly

    @property
    def stalled_count(self) -> int:
        return sum(1 for tx in self._tx.values() if tx.status == STALLED)

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        txs = list(self._tx.values()) + list(self._ended.values())
        if status is not None:
            txs = [tx for tx in txs if tx.status == status]
        return [tx.to_dict() for tx in sorted(txs, key=lambda t: t.started_at)]

    # --- internals -----------------------------------------------------------------------
    def _progress(self, tx: Transaction, now: float) -> None:
        tx.last_progress_at, tx.last_progress_mono = now, time.monotonic()
        if tx.status == STALLED:  # work moved again
            tx.status, tx.stalled_since = ACTIVE, None
            tx.events.append({"stage": "resumed", "at": now, "data": {}})
            self._persist(tx, ("resumed", now, {}))

    def _persist(self, tx: Transaction, stage: tuple[str, float, dict[str, Any]] | None = None) -> None:
        self.store.upsert_transaction(
            tx.session_id, status=tx.status, started_at=tx.started_at, last_progress_at=tx.last_progress_at,
            stalled_since=tx.stalled_since, ended_at=tx.ended_at, end_reason=tx.end_reason, stage=stage,
        )
