"""The ``docker`` nemesis: faults on a backend's container through the engine, beside Toxiproxy,
the WebSocket proxy and the process faults.

Each fault is one small type with ``start()`` and ``stop()``; both block (docker calls) and return
the fault's windows, one per history given (or one of its own when none is), opened at ``start``
and closed at ``stop`` once the container is back (ready again after a restart). ``run_for``
holds a fault for some seconds from asyncio without blocking the loop, so the sessions on it keep
streaming, reconnecting and recording meanwhile.

======================  ====================================  =================================
kind                    start                                 stop
======================  ====================================  =================================
``docker_pause``        ``docker pause`` (cgroup freezer)     ``docker unpause``
``docker_kill``         SIGKILL (``docker kill``; or to the   ``docker start`` + ready (or the
                        container's init from the host, for   engine's restart policy restarts
                        the restart policy to act on)         it: waited for, + ready)
``docker_stop``         ``docker stop -t GRACE`` (SIGTERM,    ``docker start`` + ready
                        SIGKILL after GRACE); exit code kept
``docker_disconnect``   ``docker network disconnect``         ``docker network connect``
``docker_update``       ``docker update`` CPU / memory        the limits it had before
======================  ====================================  =================================
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from harness.containers.server import ContainerError, ContainerServer
from harness.history import FaultWindow, History


class DockerFault:
    """One fault on one container; ``kind`` names it in fault windows and reports."""

    kind = "docker"

    def __init__(self, server: ContainerServer, histories: History | Sequence[History] | None = None):
        self.server = server
        self.histories = [histories] if isinstance(histories, History) else list(histories or [])
        self.windows: list[FaultWindow] = []

    @property
    def target(self) -> str:
        return f"docker:{self.server.name}"

    def params(self) -> dict[str, Any]:
        return {}

    def start(self) -> list[FaultWindow]:
        if self.windows:
            raise ContainerError(f"{self.kind} on {self.server.name} is already started")
        params = self.params()
        self.windows = [h.start_fault(self.kind, target=self.target, **params) for h in self.histories] or \
            [FaultWindow(self.kind, dict(params), time.monotonic_ns(), target=self.target)]
        try:
            self._inject()
        except BaseException:
            self._close(error="the fault could not be injected")
            raise
        return self.windows

    def stop(self) -> list[FaultWindow]:
        if not self.windows:
            raise ContainerError(f"{self.kind} on {self.server.name} was not started")
        try:
            self._revert()
        finally:
            self._close()
        return self.windows

    def _close(self, **params: Any) -> None:
        for w in self.windows:
            w.params.update(params)
            History.end_fault(w)

    def _inject(self) -> None:
        raise NotImplementedError

    def _revert(self) -> None:
        raise NotImplementedError


class Pause(DockerFault):
    """Every process of the container frozen: connections stay open, nothing answers."""

    kind = "docker_pause"

    def _inject(self) -> None:
        self.server.freeze()

    def _revert(self) -> None:
        self.server.thaw()


class KillRestart(DockerFault):
    """A crash: SIGKILL, no close frames. ``by="harness"``: ``docker kill``, then ``docker start``
    at ``stop()``. ``by="policy"``: SIGKILL to the container's init from the host (a crash the
    engine sees as one, unlike ``docker kill``), and ``stop()`` waits for the container's restart
    policy to bring it back (the container needs one, e.g. ``on-failure``)."""

    kind = "docker_kill"

    def __init__(self, server: ContainerServer, histories: History | Sequence[History] | None = None,
                 by: str = "harness", restart_timeout_s: float = 60.0):
        super().__init__(server, histories)
        if by not in ("harness", "policy"):
            raise ValueError(f"KillRestart by={by!r}: expected 'harness' or 'policy'")
        self.by = by
        self.restart_timeout_s = restart_timeout_s
        self._restarts_before = 0

    def params(self) -> dict[str, Any]:
        return {"signal": "SIGKILL", "restart": self.by}

    def _inject(self) -> None:
        if self.by == "harness":
            self.server.kill()
            return
        c = self.server.container
        c.reload()
        policy = ((c.attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        if policy in ("", "no"):
            raise ContainerError(f"container {c.name} has no restart policy: by='policy' needs one "
                                 f"(docker run --restart on-failure)")
        self._restarts_before = int(c.attrs.get("RestartCount") or 0)
        pid = c.attrs["State"].get("Pid")
        if not pid:
            raise ContainerError(f"container {c.name} has no running process to kill")
        os.kill(int(pid), signal.SIGKILL)

    def _revert(self) -> None:
        if self.by == "harness":
            self.server.start()
            return
        c = self.server.container
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            c.reload()
            if int(c.attrs.get("RestartCount") or 0) > self._restarts_before and c.status == "running":
                break
            if time.monotonic() > deadline:
                raise ContainerError(f"container {c.name} was not restarted by its restart policy within "
                                     f"{self.restart_timeout_s:.0f} s (status {c.status}, "
                                     f"restart count {c.attrs.get('RestartCount')})")
            time.sleep(0.1)
        self.server._wait()


class StopGrace(DockerFault):
    """A graceful stop: SIGTERM (the reference server closes its streams with 1001), SIGKILL if it
    is still running after ``grace_s``; started again at ``stop()``."""

    kind = "docker_stop"

    def __init__(self, server: ContainerServer, histories: History | Sequence[History] | None = None,
                 grace_s: float = 10.0):
        super().__init__(server, histories)
        self.grace_s = grace_s
        self.exit_code: int | None = None

    def params(self) -> dict[str, Any]:
        return {"signal": "SIGTERM", "grace_s": self.grace_s}

    def _inject(self) -> None:
        self.exit_code = self.server.stop(self.grace_s)
        for w in self.windows:
            w.params["exit_code"] = self.exit_code

    def _revert(self) -> None:
        self.server.start()


class NetworkDisconnect(DockerFault):
    """The container off its network (its published port goes dark), then connected again."""

    kind = "docker_disconnect"

    def __init__(self, server: ContainerServer, histories: History | Sequence[History] | None = None,
                 network: str | None = None):
        super().__init__(server, histories)
        c = server.container
        c.reload()
        names = list((c.attrs["NetworkSettings"].get("Networks") or {}))
        if network is None and not names:
            raise ContainerError(f"container {c.name} is on no network")
        self.network = network or names[0]

    def params(self) -> dict[str, Any]:
        return {"network": self.network}

    def _net(self) -> Any:
        return self.server.container.client.networks.get(self.network)

    def _inject(self) -> None:
        self._net().disconnect(self.server.container)

    def _revert(self) -> None:
        self._net().connect(self.server.container)
        self.server._wait(self.server.waits[1:])  # the port answers again (the log line is old news)


class UpdateLimits(DockerFault):
    """CPU and memory limits changed while the container runs (``docker update``), restored at
    ``stop()``. ``cpus`` is in cores (0.2 = a fifth of one), ``memory_mb`` in MiB."""

    kind = "docker_update"
    PERIOD_US = 100_000

    def __init__(self, server: ContainerServer, histories: History | Sequence[History] | None = None,
                 cpus: float | None = None, memory_mb: int | None = None):
        super().__init__(server, histories)
        if cpus is None and memory_mb is None:
            raise ValueError("UpdateLimits needs cpus or memory_mb")
        if cpus is not None and cpus <= 0:
            raise ValueError(f"UpdateLimits cpus must be > 0, not {cpus}")
        if memory_mb is not None and memory_mb < 6:
            raise ValueError(f"UpdateLimits memory_mb must be at least 6 (the engine's minimum), not {memory_mb}")
        self.cpus = cpus
        self.memory_mb = memory_mb
        self._before: dict[str, Any] = {}

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in (("cpus", self.cpus), ("memory_mb", self.memory_mb)) if v is not None}

    def _inject(self) -> None:
        c = self.server.container
        c.reload()
        host = c.attrs.get("HostConfig") or {}
        self._before = {"cpu_quota": host.get("CpuQuota") or -1, "cpu_period": host.get("CpuPeriod") or self.PERIOD_US,
                        "mem_limit": host.get("Memory") or 0, "memswap_limit": host.get("MemorySwap") or 0}
        change: dict[str, Any] = {}
        if self.cpus is not None:
            change.update(cpu_period=self.PERIOD_US, cpu_quota=int(self.cpus * self.PERIOD_US))
        if self.memory_mb is not None:
            change.update(mem_limit=f"{self.memory_mb}m", memswap_limit=f"{self.memory_mb}m")
        c.update(**change)

    def _revert(self) -> None:
        c = self.server.container
        change: dict[str, Any] = {}
        if self.cpus is not None:
            change.update(cpu_period=self._before["cpu_period"], cpu_quota=self._before["cpu_quota"])
        if self.memory_mb is not None:
            # The engine cannot lift a memory limit once set; "before: unlimited" becomes the host's memory.
            # (memory+swap is given explicitly: cgroup v1 refuses a memory limit above it)
            mem = self._before["mem_limit"] or _host_memory_bytes()
            swap = self._before["memswap_limit"] if self._before["mem_limit"] and self._before["memswap_limit"] > 0 else 2 * mem
            change.update(mem_limit=mem, memswap_limit=swap)
        c.update(**change)


def _host_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


async def run_for(fault: DockerFault, seconds: float) -> list[FaultWindow]:
    """``fault`` held for ``seconds`` (then reverted, whatever happened), off the event loop.

    Cancelled while the fault is being injected, it still waits for the injection to finish (the
    docker call cannot be taken back half way) and then reverts it."""
    starting = asyncio.ensure_future(asyncio.to_thread(fault.start))
    try:
        await asyncio.shield(starting)
        await asyncio.sleep(seconds)
    finally:
        await asyncio.wait({starting})
        if not starting.cancelled() and starting.exception() is None:
            await asyncio.shield(asyncio.to_thread(fault.stop))
    return fault.windows


FAULTS: dict[str, type[DockerFault]] = {f.kind: f for f in (Pause, KillRestart, StopGrace, NetworkDisconnect, UpdateLimits)}

__all__ = ["FAULTS", "DockerFault", "KillRestart", "NetworkDisconnect", "Pause", "StopGrace", "UpdateLimits", "run_for"]
