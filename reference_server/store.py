"""SQLite persistence (stdlib sqlite3, WAL): sessions, finals, results, pipeline events, tracker.

One connection shared by the event loop (short calls) and the engine worker threads (finals are
written there, before they are sent), serialized by a lock. WAL with synchronous=NORMAL: a
committed transaction survives the process being killed (kill -9), which is the crash the resume
contract is about; only an OS crash may lose the last transactions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .session_states import ENDED, INTERRUPTED, STREAMING

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    engine TEXT NOT NULL,
    script TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    token_hash TEXT NOT NULL,
    received_offset INTEGER NOT NULL DEFAULT 0,
    durable_offset INTEGER NOT NULL DEFAULT 0,
    next_segment_id INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE TABLE IF NOT EXISTS finals (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    segment_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    words TEXT NOT NULL,
    boundary_offset INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, segment_id)
);
CREATE TABLE IF NOT EXISTS results (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (session_id, step)
);
-- Action items are rows (what a task tracker would hold), appended by the tasks step.
CREATE TABLE IF NOT EXISTS task_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    item TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id, seq);
-- Tracker rows outlive a deleted session: they hold stage names and offsets, no transcript.
CREATE TABLE IF NOT EXISTS transactions (
    session_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_progress_at REAL NOT NULL,
    stalled_since REAL,
    ended_at REAL,
    end_reason TEXT
);
CREATE TABLE IF NOT EXISTS stage_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stage_events_session ON stage_events(session_id, seq);
"""


def _final_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "segment_id": row["segment_id"],
        "text": row["text"],
        "start_ms": row["start_ms"],
        "end_ms": row["end_ms"],
        "words": json.loads(row["words"]),
    }


class Store:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # --- sessions ------------------------------------------------------------------------
    def create_session(self, session_id: str, *, state: str, engine: str, script: str,
                       metadata: dict[str, Any], token_hash: str, created_at: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO sessions (id, state, engine, script, metadata, token_hash, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, state, engine, script, json.dumps(metadata), token_hash, created_at, created_at),
            )

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        if not rows:
            return None
        row = dict(rows[0])
        row["metadata"] = json.loads(row["metadata"])
        return row

    def set_state(self, session_id: str, state: str, *, received_offset: int | None = None) -> None:
        now = time.time()
        ended = now if state in ENDED else None
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET state = ?, updated_at = ?, ended_at = COALESCE(?, ended_at),"
                " received_offset = COALESCE(?, received_offset) WHERE id = ?",
                (state, now, ended, received_offset, session_id),
            )

    def set_received(self, session_id: str, received_offset: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE sessions SET received_offset = ?, updated_at = ? WHERE id = ?",
                       (received_offset, time.time(), session_id))

    def delete_session(self, session_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def count_active(self) -> int:
        placeholders = ",".join("?" for _ in ENDED)
        rows = self._query(f"SELECT COUNT(*) AS n FROM sessions WHERE state NOT IN ({placeholders})", ENDED)
        return int(rows[0]["n"])

    def session_ids_in(self, states: Iterable[str]) -> list[str]:
        states = list(states)
        placeholders = ",".join("?" for _ in states)
        return [r["id"] for r in self._query(f"SELECT id FROM sessions WHERE state IN ({placeholders})", states)]

    def recover_after_restart(self) -> int:
        """Audio held only in memory is gone: every open session resumes at its durable offset.
        A session that was streaming when the process died is interrupted. Returns that count."""
        with self._tx() as db:
            n = db.execute("UPDATE sessions SET state = ?, updated_at = ? WHERE state = ?",
                           (INTERRUPTED, time.time(), STREAMING)).rowcount
            db.execute("UPDATE sessions SET received_offset = durable_offset WHERE ended_at IS NULL")
        return n

    # --- finals --------------------------------------------------------------------------
    def add_finals(self, session_id: str, finals: list[dict[str, Any]], *, durable_offset: int,
                   received_offset: int, next_segment_id: int) -> None:
        """Persist finals and advance the durable offset in one transaction (before they are sent)."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO finals (session_id, segment_id, text, start_ms, end_ms, words, boundary_offset, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(session_id, f["segment_id"], f["text"], f["start_ms"], f["end_ms"], json.dumps(f["words"]),
                  f["boundary_offset"], now) for f in finals],
            )
            db.execute(
                "UPDATE sessions SET durable_offset = MAX(durable_offset, ?), received_offset = ?,"
                " next_segment_id = MAX(next_segment_id, ?), updated_at = ? WHERE id = ?",
                (durable_offset, received_offset, next_segment_id, now, session_id),
            )

    def finals(self, session_id: str, after: int = -1) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM finals WHERE session_id = ? AND segment_id > ? ORDER BY segment_id",
                           (session_id, after))
        return [_final_row(r) for r in rows]

    # --- pipeline results and events -----------------------------------------------------
    def put_result(self, session_id: str, step: str, payload: dict[str, Any],
                   task_items: list[Any] | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO results (session_id, step, payload) VALUES (?, ?, ?)",
                       (session_id, step, json.dumps(payload)))
            if task_items:
                db.executemany("INSERT INTO task_items (session_id, item) VALUES (?, ?)",
                               [(session_id, json.dumps(item)) for item in task_items])

    def results(self, session_id: str) -> dict[str, dict[str, Any]]:
        out = {r["step"]: json.loads(r["payload"])
               for r in self._query("SELECT step, payload FROM results WHERE session_id = ?", (session_id,))}
        return out

    def task_items(self, session_id: str) -> list[Any]:
        return [json.loads(r["item"]) for r in
                self._query("SELECT item FROM task_items WHERE session_id = ? ORDER BY id", (session_id,))]

    def add_event(self, session_id: str, name: str, at: float, data: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events (session_id, name, at, data) VALUES (?, ?, ?, ?)",
                       (session_id, name, at, json.dumps(data)))

    def finish(self, session_id: str, state: str, event: tuple[str, float, dict[str, Any]] | None) -> None:
        """The pipeline's last event and the session's end state in one transaction, so a client
        that saw the last event and then reads the session finds it ended."""
        now = time.time()
        with self._tx() as db:
            if event is not None:
                name, at, data = event
                db.execute("INSERT INTO events (session_id, name, at, data) VALUES (?, ?, ?, ?)",
                           (session_id, name, at, json.dumps(data)))
            db.execute("UPDATE sessions SET state = ?, updated_at = ?, ended_at = ? WHERE id = ?",
                       (state, now, now, session_id))

    def events(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT name, at, data FROM events WHERE session_id = ? ORDER BY seq", (session_id,))
        return [{"name": r["name"], "at": r["at"], "data": json.loads(r["data"])} for r in rows]

    # --- tracker -------------------------------------------------------------------------
    _UPSERT_TX = (
        "INSERT INTO transactions (session_id, status, started_at, last_progress_at, stalled_since,"
        " ended_at, end_reason) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE SET"
        " status = excluded.status, last_progress_at = excluded.last_progress_at,"
        " stalled_since = excluded.stalled_since, ended_at = excluded.ended_at,"
        " end_reason = excluded.end_reason"
    )

    def upsert_transaction(self, session_id: str, *, status: str, started_at: float, last_progress_at: float,
                           stalled_since: float | None, ended_at: float | None, end_reason: str | None,
                           stage: tuple[str, float, dict[str, Any]] | None = None) -> None:
        """The transaction row, and optionally one stage event with it, in one transaction."""
        with self._tx() as db:
            db.execute(self._UPSERT_TX,
                       (session_id, status, started_at, last_progress_at, stalled_since, ended_at, end_reason))
            if stage is not None:
                name, at, data = stage
                db.execute("INSERT INTO stage_events (session_id, stage, at, data) VALUES (?, ?, ?, ?)",
                           (session_id, name, at, json.dumps(data)))

    def add_stage_event(self, session_id: str, stage: str, at: float, data: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO stage_events (session_id, stage, at, data) VALUES (?, ?, ?, ?)",
                       (session_id, stage, at, json.dumps(data)))

    def open_transactions(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM transactions WHERE ended_at IS NULL")]

    def stage_events(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT stage, at, data FROM stage_events WHERE session_id = ? ORDER BY seq", (session_id,))
        return [{"stage": r["stage"], "at": r["at"], "data": json.loads(r["data"])} for r in rows]
