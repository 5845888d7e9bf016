"""The process layer's faults: signals to a server the harness started (``ctx.layer("process")``,
a :class:`harness.services.ReferenceServer`). The signalling itself is :mod:`harness.faults.process`.

A kill -9 and restart, and a SIGTERM and restart, are momentary: over when ``start`` returns (the
window runs from the signal to the server being back). A freeze lasts from ``start`` (SIGSTOP) to
``stop`` (SIGCONT).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

from harness.faults import process as procfaults
from harness.faults.base import Fault, FaultContext, check_field_types


@dataclass
class Kill9(Fault):
    """SIGKILL (a crash: no close frames, nothing flushed), ``down_s`` with nothing listening, restart."""

    name: ClassVar[str] = "kill9"
    layer: ClassVar[str] = "process"
    momentary: ClassVar[bool] = True
    down_s: float = 0.5

    def __post_init__(self) -> None:
        check_field_types(self)

    async def _start(self, ctx: FaultContext) -> None:
        server = ctx.layer(self.layer, self.name)
        self.windows.extend(await procfaults.kill_and_restart(server, ctx.histories, down_s=self.down_s))


@dataclass
class SigtermRestart(Fault):
    """SIGTERM (streams closed 1001), ``down_s`` down, then started again."""

    name: ClassVar[str] = "sigterm_restart"
    layer: ClassVar[str] = "process"
    momentary: ClassVar[bool] = True
    down_s: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)

    async def _start(self, ctx: FaultContext) -> None:
        server = ctx.layer(self.layer, self.name)
        self.windows.extend(await procfaults.graceful_restart(server, ctx.histories, down_s=self.down_s))


@dataclass
class Freeze(Fault):
    """SIGSTOP: the process keeps its sockets but answers nothing, until SIGCONT at ``stop``."""

    name: ClassVar[str] = "freeze"
    layer: ClassVar[str] = "process"

    async def _start(self, ctx: FaultContext) -> None:
        server = ctx.layer(self.layer, self.name)
        stack = contextlib.AsyncExitStack()
        self.windows.extend(await stack.enter_async_context(procfaults.frozen(server, ctx.histories)))
        self._state()["stack"] = stack

    async def _stop(self) -> None:
        await self._state()["stack"].aclose()


__all__ = ["Freeze", "Kill9", "SigtermRestart"]
