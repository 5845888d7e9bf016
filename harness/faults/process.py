"""Process faults on a server the harness started: crash (SIGKILL) and restart, freeze (SIGSTOP
then SIGCONT), graceful restart (SIGTERM: streams closed 1001, then started again).

Each fault is a window in the given histories, from the signal to the moment the server is back
(healthy after a restart, resumed after a freeze). The blocking parts (waiting for the process to
exit, for the restarted server to say it is listening) run in a thread, so sessions on the same
event loop keep streaming, reconnecting and recording while the server is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from harness.history import FaultWindow, History
from harness.errors import ServiceError


class ManagedServer(Protocol):
    """What a process fault needs: harness.services.ReferenceServer has all of it."""

    proc: Any
    url: str

    def kill(self) -> None: ...
    def stop(self, timeout_s: float = ...) -> int | None: ...
    def start(self) -> Any: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def is_running(self) -> bool: ...


class ProcessFaultError(ServiceError):
    """The target cannot take a process fault (not started by the harness, or not running)."""


def _require_running(server: ManagedServer) -> None:
    if server is None or not hasattr(server, "proc"):
        raise ProcessFaultError(
            "process faults need a server the harness started (harness.services.ReferenceServer); "
            "a --target backend cannot be killed or frozen from here"
        )
    if not server.is_running():
        raise ProcessFaultError(f"server at {server.url} is not running; cannot signal it")


def _histories(history: History | Sequence[History] | None) -> list[History]:
    if history is None:
        return []
    return [history] if isinstance(history, History) else list(history)


def _open(histories: list[History], kind: str, server: ManagedServer, **params: Any) -> list[FaultWindow]:
    return [h.start_fault(kind, target=f"process:{server.url}", **params) for h in histories]


def _close(windows: list[FaultWindow], **params: Any) -> None:
    for w in windows:
        w.params.update(params)
        History.end_fault(w)


async def kill_and_restart(server: ManagedServer, history: History | Sequence[History] | None = None,
                           down_s: float = 0.5) -> list[FaultWindow]:
    """SIGKILL (no close frames, nothing flushed: a crash), ``down_s`` with nothing listening,
    then start it again on the same port and database."""
    _require_running(server)
    windows = _open(_histories(history), "kill9", server, signal="SIGKILL", down_s=down_s, pid_before=server.proc.pid)
    try:
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(server.start)
    finally:
        _close(windows, pid_after=getattr(server.proc, "pid", None), running=server.is_running())
    return windows


async def graceful_restart(server: ManagedServer, history: History | Sequence[History] | None = None,
                           down_s: float = 0.0) -> list[FaultWindow]:
    """SIGTERM: the server closes open streams with 1001 and exits; then it starts again."""
    _require_running(server)
    windows = _open(_histories(history), "sigterm_restart", server, signal="SIGTERM", down_s=down_s,
                    pid_before=server.proc.pid)
    exit_code = None
    try:
        exit_code = await asyncio.to_thread(server.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(server.start)
    finally:
        _close(windows, exit_code=exit_code, pid_after=getattr(server.proc, "pid", None), running=server.is_running())
    return windows


@contextlib.asynccontextmanager
async def frozen(server: ManagedServer, history: History | Sequence[History] | None = None) -> AsyncIterator[list[FaultWindow]]:
    """SIGSTOP inside the block: the process keeps its sockets (connections stay open, the kernel
    still accepts) but answers nothing. SIGCONT in finally, whatever happened."""
    _require_running(server)
    windows = _open(_histories(history), "freeze", server, signal="SIGSTOP", pid=server.proc.pid)
    server.freeze()
    try:
        yield windows
    finally:
        server.thaw()
        _close(windows)


async def freeze(server: ManagedServer, duration_s: float, history: History | Sequence[History] | None = None) -> list[FaultWindow]:
    """The server frozen for ``duration_s`` seconds."""
    async with frozen(server, history) as windows:
        await asyncio.sleep(duration_s)
    return windows


def send_signal(server: ManagedServer, sig: signal.Signals) -> None:
    """Any other signal, for a scenario that needs it (the process must be running)."""
    _require_running(server)
    server.proc.send_signal(sig)


__all__ = ["ProcessFaultError", "freeze", "frozen", "graceful_restart", "kill_and_restart", "send_signal"]
