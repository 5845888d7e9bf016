"""The docker layer's faults: a backend's container through the engine (``ctx.layer("docker")``, a
:class:`harness.containers.server.ContainerServer`). The docker calls themselves, each fault's
``start``/``stop`` and its windows, are :mod:`harness.containers.faults`; these types put them
behind the one fault interface, so schedules and the matrix name them like any other fault.

A kill and restart and a stop and restart are momentary (over when ``start`` returns: the window
runs from the signal to the container being ready again); a pause, a network disconnect and a
resource squeeze last from ``start`` to ``stop``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.containers import faults as dfaults
from harness.faults.base import Fault, FaultContext, FaultError, check_field_types


def _container(ctx: FaultContext, fault: str) -> Any:
    from harness.containers.server import ContainerServer

    server = ctx.layer("docker", fault)
    if not isinstance(server, ContainerServer):
        raise FaultError(f"fault {fault!r} needs a server in a container (harness.containers.server.ContainerServer), "
                         f"not {type(server).__name__}")
    return server


class _Docker(Fault):
    layer: ClassVar[str] = "docker"

    def _make(self, server: Any, ctx: FaultContext) -> dfaults.DockerFault:
        raise NotImplementedError

    async def _start(self, ctx: FaultContext) -> None:
        impl = self._make(_container(ctx, self.name), ctx)
        self._state()["impl"] = impl
        self.windows.extend(await asyncio.to_thread(impl.start))
        if self.momentary:
            await self._finish()

    async def _finish(self) -> None:
        await asyncio.to_thread(self._state()["impl"].stop)

    async def _stop(self) -> None:
        if not self.momentary:
            await self._finish()


@dataclass
class DockerPause(_Docker):
    """``docker pause`` (the cgroup freezer) until ``stop``: sockets open, nothing answers."""

    name: ClassVar[str] = "docker_pause"

    def _make(self, server: Any, ctx: FaultContext) -> dfaults.DockerFault:
        return dfaults.Pause(server, ctx.histories)


@dataclass
class DockerKill(_Docker):
    """SIGKILL, ``down_s`` down, then back: ``restart = "harness"`` (``docker start``) or
    ``"policy"`` (SIGKILL to the container's init; its restart policy brings it back)."""

    name: ClassVar[str] = "docker_kill"
    momentary: ClassVar[bool] = True
    restart: str = "harness"
    down_s: float = 0.5

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.restart not in ("harness", "policy"):
            raise ValueError(f"DockerKill.restart must be 'harness' or 'policy', got {self.restart!r}")

    def _make(self, server: Any, ctx: FaultContext) -> dfaults.DockerFault:
        return dfaults.KillRestart(server, ctx.histories, by=self.restart)

    async def _finish(self) -> None:
        if self.restart == "harness":
            await asyncio.sleep(self.down_s)
        await super()._finish()


@dataclass
class DockerStop(_Docker):
    """``docker stop -t grace_s`` (SIGTERM, SIGKILL after the grace), ``down_s`` down, started again."""

    name: ClassVar[str] = "docker_stop"
    momentary: ClassVar[bool] = True
    grace_s: float = 10.0
    down_s: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)

    def _make(self, server: Any, ctx: FaultContext) -> dfaults.DockerFault:
        return dfaults.StopGrace(server, ctx.histories, grace_s=self.grace_s)

    async def _finish(self) -> None:
        await asyncio.sleep(self.down_s)
        await super()._finish()


@dataclass
class DockerDisconnect(_Docker):
    """The container off its network (``network``; default: its first) until ``stop``."""

    name: ClassVar[str] = "docker_disconnect"
    network: str = ""

    def __post_init__(self) -> None:
        check_field_types(self)

    def _make(self, server: Any, ctx: FaultContext) -> dfaults.DockerFault:
        return dfaults.NetworkDisconnect(server, ctx.histories, network=self.network or None)


@dataclass
class DockerUpdate(_Docker):
    """CPU (cores) and memory (MiB) limits set while it runs (``docker update``), restored at ``stop``."""

    name: ClassVar[str] = "docker_update"
    cpus: float | None = None
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.cpus is None and self.memory_mb is None:
            raise ValueError("DockerUpdate needs cpus or memory_mb")

    def _make(self, server: Any, ctx: FaultContext) -> dfaults.DockerFault:
        return dfaults.UpdateLimits(server, ctx.histories, cpus=self.cpus, memory_mb=self.memory_mb)


__all__ = ["DockerDisconnect", "DockerKill", "DockerPause", "DockerStop", "DockerUpdate"]
