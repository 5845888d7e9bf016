"""Runs a schedule's steps against one session from the client's side (the chaos matrix): each
step waits for its trigger in the session's history, starts its fault, and stops it after its
duration or when the session is over, whichever comes first.

The fault proxy runs schedules per connection itself (``WsFaultProxy(schedule=...)``), from the
messages it relays; this is the same schedule read from the other end of the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from harness.faults.base import FaultContext
from harness.faults.schedule import BYTES_PER_MS, Step
from harness.history import History


class SessionEnded(Exception):
    """The session ended (or the wait timed out) before the step's trigger was reached."""


@dataclass
class HistoryProgress:
    """A session's progress, read from its history as it grows (each record read once)."""

    history: History
    audio_bytes: int = 0  # the audio sent through this byte offset (resends do not add)
    results: int = 0
    finalized: bool = False
    bytes_per_ms: int = BYTES_PER_MS
    _seen: int = 0

    @property
    def elapsed_ms(self) -> float:
        return (time.monotonic_ns() - self.history.t0_ns) / 1e6

    def update(self) -> HistoryProgress:
        records = self.history.records
        for r in records[self._seen:]:
            if r.kind == "audio_sent":
                self.audio_bytes = max(self.audio_bytes, r.data["offset"] + r.data["length"])
            elif r.kind == "event" and r.data["event"].get("type") in ("partial", "final"):
                self.results += 1
            elif r.kind == "control_sent" and r.data.get("message") == "finalize":
                self.finalized = True
        self._seen = len(records)
        return self


async def run_step(step: Step, ctx: FaultContext, progress: HistoryProgress, done: asyncio.Event,
                   timeout_s: float = 120.0, poll_s: float = 0.01) -> None:
    """Wait for the trigger (SessionEnded if the session ends first), start the fault, stop it
    after ``duration_ms`` or at the session's end; stopped in finally, whatever happened."""
    deadline = time.monotonic() + timeout_s
    while not step.at.reached(progress.update()):
        if done.is_set():
            raise SessionEnded(f"the session ended before the {step.fault.name} trigger {step.at.describe()!r}")
        if time.monotonic() > deadline:
            raise SessionEnded(f"the {step.fault.name} trigger {step.at.describe()!r} not reached within {timeout_s:g} s")
        await asyncio.sleep(poll_s)
    try:
        await step.fault.start(ctx)
        if type(step.fault).momentary:
            return
        if step.duration_ms is None:
            await done.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), step.duration_ms / 1000)
    finally:
        await step.fault.stop()


async def run_steps(steps: list[Step], ctx: FaultContext, history: History, done: asyncio.Event,
                    timeout_s: float = 120.0) -> None:
    """Every step side by side; the first error is raised once all have stopped."""
    progress = HistoryProgress(history)
    results = await asyncio.gather(*(run_step(s, ctx, progress, done, timeout_s) for s in steps),
                                   return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r


__all__ = ["HistoryProgress", "SessionEnded", "run_step", "run_steps"]
