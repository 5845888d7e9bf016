"""The harness's side of a client driver: run a batch of cases in the driver's subprocess and turn
what it wrote into one :class:`~harness.history.History` per case, the shape the checks read.

A batch is one subprocess (``python -m harness.relay.clients DRIVER PLAN``) running its cases side
by side; its stdout is one JSON line per event (``base.Recorder``), its stderr (the library's own
log) goes to ``log_path``. The batch is bounded: past ``deadline_s`` the process is killed and the
cases it had not finished end as ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.history import History
from harness.protocols.events import Closed, Error, Final
from harness.relay.clients import DRIVERS
from harness.relay.clients.base import Case


class DriverError(RuntimeError):
    """The driver's process could not run (not installed, crashed at import): the message says
    which driver and ends with its log."""


@dataclass
class ClientRun:
    """What one case's client delivered: its history, and how the library's stream ended."""

    case: Case
    history: History
    outcome: str = "missing"  # finished | gave_up | timeout | driver_error | missing (no end line)
    detail: str = ""
    silences: list[tuple[int, int]] = field(default_factory=list)
    errors: list[tuple[int, str, bool | None]] = field(default_factory=list)


def fill_history(case: Case, history: History, events: Sequence[dict[str, Any]]) -> ClientRun:
    """Adds one case's driver events to ``history``: ``audio_sent`` per chunk handed to the
    library, a ``Final`` per final transcript (each its own segment: a client that delivers a
    result twice shows it twice), an ``Error`` per error it reported, and a ``Closed`` at the end
    (1000 when the library ended the stream itself, 1011 otherwise)."""
    run = ClientRun(case=case, history=history)
    segment = 0
    for ev in events:
        t, kind = int(ev["t_ns"]), ev["kind"]
        if kind == "audio":
            history.add("audio_sent", t_ns=t, offset=ev["offset"], length=ev["length"])
        elif kind == "final":
            start_ms = int(round((ev.get("start_s") or 0.0) * 1000))
            end_ms = int(round((ev.get("end_s") or 0.0) * 1000))
            history.add_event(Final(segment, ev["text"], start_ms, max(start_ms, end_ms)), t_ns=t)
            segment += 1
        elif kind == "error":
            history.add_event(Error("client_error", ev["message"], retryable=bool(ev.get("recoverable"))), t_ns=t)
            run.errors.append((t, ev["message"], ev.get("recoverable")))
        elif kind == "silence":
            run.silences.append((int(ev["start_ns"]), int(ev["end_ns"])))
        elif kind == "note":
            history.add("note", t_ns=t, text=ev["text"])
        elif kind == "end":
            run.outcome, run.detail = ev["outcome"], ev.get("detail", "")
            history.add_event(Closed(1000 if run.outcome == "finished" else 1011, run.outcome), t_ns=t)
    return run


async def run_batch(driver: str, cases: Sequence[Case], histories: dict[str, History], log_path: Path,
                    deadline_s: float) -> dict[str, ClientRun]:
    """Runs ``cases`` through ``driver`` in one subprocess; fills ``histories`` (one per case id,
    made before the batch so that the proxy's fault windows land in them) and returns a ClientRun
    per case id."""
    if driver not in DRIVERS:
        raise ValueError(f"unknown client driver {driver!r}; known: {', '.join(DRIVERS)}")
    missing = [c.case_id for c in cases if c.case_id not in histories]
    if missing:
        raise ValueError(f"run_batch: no history for case(s) {', '.join(missing)}")
    events: dict[str, list[dict[str, Any]]] = {c.case_id: [] for c in cases}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump([c.to_dict() for c in cases], f)
        plan = f.name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "harness.relay.clients", driver, plan, stdout=asyncio.subprocess.PIPE,
                stderr=log, stdin=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})

            async def read() -> None:
                assert proc.stdout is not None
                async for line in proc.stdout:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue  # a library printing to stdout: its text is not an event
                    if isinstance(ev, dict) and ev.get("case") in events:
                        events[ev["case"]].append(ev)
                await proc.wait()

            try:
                await asyncio.wait_for(read(), deadline_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    finally:
        os.unlink(plan)
    if proc.returncode not in (0, -9) and not any(events.values()):
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
        raise DriverError(f"client driver {driver} exited with {proc.returncode} before any event:\n"
                          + "\n".join(tail))
    runs = {}
    for c in cases:
        run = fill_history(c, histories[c.case_id], events[c.case_id])
        if run.outcome == "missing":
            run.outcome, run.detail = "timeout", f"killed at the batch deadline of {deadline_s:g} s"
        runs[c.case_id] = run
    return runs
