"""The load user's session: the sync driver, plus a clean close when Locust stops the user.

Locust stops a user by raising ``GreenletExit`` wherever its greenlet is blocked. The sync driver
would then drop the TCP connection, which the server sees as a network failure (1006) and may
hold the session open for a reconnect. A stopped load user is not a failure, so
:class:`LoadSessionClient` closes the stream with 1000 first. Imports no gevent: the exception
is caught as ``BaseException`` (GreenletExit, KeyboardInterrupt, SystemExit alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from harness.audio import Fixture
from harness.drivers.session import SessionPlan
from harness.drivers.sync_driver import SyncSessionClient
from harness.load.measure import SCRIPT_WORD_MS, SessionMeta
from harness.protocols.base import SessionParams

STOP_CLOSE_CODE = 1000
STOP_REASON = "load test stopped"


class LoadSessionClient(SyncSessionClient):
    """A :class:`SyncSessionClient` that closes its stream with 1000 when interrupted."""

    interrupted: bool = False

    def _loop(self, http: httpx.Client) -> None:
        try:
            super()._loop(http)
        except BaseException:
            self.interrupted = True
            self.close_gracefully()
            raise

    def close_gracefully(self, code: int = STOP_CLOSE_CODE, reason: str = STOP_REASON) -> None:
        """Close the open stream, if any, with a close frame (bounded by the driver's close_timeout)."""
        ws, self._ws = self._ws, None
        if ws is None:
            return
        try:
            ws.close(code, reason)
        except Exception:  # noqa: BLE001 - the connection may already be gone; nothing left to close
            pass

    @property
    def pacing_errors_ms(self) -> list[float]:
        return list(self.core.pacer.errors_ms)

    def release(self) -> None:
        """Drop the session's state once its samples are written.

        The session core is a reference cycle (its pacer's clock is a closure over the core), so
        without this its whole history would wait for a full garbage collection; the load process
        keeps those rare (they pause every stream for 100 ms and more at a few hundred streams),
        so the history must go by reference counting, now.
        """
        history = self.core.history
        history.records.clear()
        history.faults.clear()
        self.core.__dict__.clear()
        self._ws = None


@dataclass(frozen=True)
class SessionSpec:
    """What one load session streams: a fixture's audio (looped ``loops`` times) and, for the
    scripted engine, the script that makes its words exact."""

    fixture: Fixture
    pcm: bytes
    engine: str
    script: str | None
    chunk_ms: float = 100
    pace: float = 1.0
    metadata: dict[str, Any] | None = None

    @classmethod
    def build(cls, fixture: Fixture, engine: str, loops: int = 1, script: str | None = None,
              chunk_ms: float = 100, pace: float = 1.0) -> SessionSpec:
        if loops < 1:
            raise ValueError(f"loops must be >= 1, got {loops}")
        if engine == "scripted":
            script = script or fixture.text
            if not script or not script.split():
                raise ValueError(f"fixture {fixture.id!r} has no text to use as the scripted engine's script; "
                                 "give a script")
        else:
            script = None
        return cls(fixture, fixture.pcm() * loops, engine, script, chunk_ms, pace)

    def meta(self, user: int | None = None) -> SessionMeta:
        return SessionMeta(self.engine, self.fixture.id, self.script, len(self.pcm), SCRIPT_WORD_MS, user)

    def plan(self, allow_remote: bool = False, seed: int | None = None) -> SessionPlan:
        params = SessionParams(engine=self.engine, script=self.script, metadata=dict(self.metadata or {}))
        meta: dict[str, Any] = {"fixture_id": self.fixture.id, "suite": "load"}
        if self.fixture.speech_onset_ms is not None:
            meta["speech_onset_ms"] = self.fixture.speech_onset_ms  # first_partial_ms counts from here
        return SessionPlan(pcm=self.pcm, params=params, chunk_ms=self.chunk_ms, pace=self.pace,
                           finalize="stream", allow_remote=allow_remote, seed=seed, meta=meta)
