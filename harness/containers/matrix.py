"""The chaos matrix's process cases against a containerized server, and the docker nemesis's own.

``DockerMatrixRunner`` is the chaos matrix's runner (``harness.faults.matrix.MatrixRunner``:
cases side by side, the same sessions, baselines and checks) whose dedicated servers are
containers from an image instead of processes. The process cases (kill -9 and restart, freeze,
SIGTERM) then run unchanged: ``harness.faults.process`` drives a ``ContainerServer`` through the
same methods as an embedded server (``docker kill``, ``docker pause``, ``docker stop``).

The docker cases add what only an engine can do: a crash restarted by the container's restart
policy, the network pulled and put back, CPU and memory limits squeezed while it streams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from harness.containers import faults as dfaults
from harness.containers.server import ContainerServer, server_args
from harness.faults import matrix
from harness.faults.matrix import CaseContext, FaultCase, Inject

RESUME = ("no-resume",)
PROCESS_CASES = ("kill9-restart", "frozen", "graceful-restart")  # matrix cases, by id


def docker_at(make: Callable[[CaseContext], dfaults.DockerFault], at_s: float, hold_s: float) -> Inject:
    """A docker fault from ``at_s`` seconds of audio sent, held ``hold_s`` (then reverted)."""

    async def inject(ctx: CaseContext) -> None:
        await ctx.sent(at_s)
        await dfaults.run_for(make(ctx), hold_s)

    return inject


def _kill_by_policy(ctx: CaseContext) -> dfaults.DockerFault:
    return dfaults.KillRestart(ctx.server, ctx.history, by="policy")


def _disconnect(ctx: CaseContext) -> dfaults.DockerFault:
    return dfaults.NetworkDisconnect(ctx.server, ctx.history)


def _squeeze(ctx: CaseContext) -> dfaults.DockerFault:
    return dfaults.UpdateLimits(ctx.server, ctx.history, cpus=0.2, memory_mb=256)


def cases(profile: str = "ci") -> list[FaultCase]:
    """The matrix's process cases (layer ``docker``: each on a container of its own), then the
    docker nemesis's: restart policy, network, resource limits."""
    by_id = {c.id: c for c in matrix.cases(profile)}
    missing = [cid for cid in PROCESS_CASES if cid not in by_id]
    if missing:
        raise KeyError(f"the chaos matrix has no case {', '.join(missing)}")
    # A restarted server has lost what no-resume corrupts (its in-memory stream state), so only the
    # network case, where the same server sees the client come back, is tagged for that defect.
    process = [replace(by_id[cid], id=f"container-{cid}", layer="docker", own_server=True) for cid in PROCESS_CASES]
    return process + [
        FaultCase("container-killed-restart-policy", "docker_kill", "docker", {"signal": "SIGKILL", "restart": "policy"},
                  docker_at(_kill_by_policy, 2.0, 0.0), own_server=True),
        FaultCase("container-network-disconnect", "docker_disconnect", "docker", {"network": "bridge", "duration_s": 2.0},
                  docker_at(_disconnect, 2.0, 2.0), own_server=True, catches=RESUME),
        FaultCase("container-cpu-memory-squeeze", "docker_update", "docker",
                  {"cpus": 0.2, "memory_mb": 256, "duration_s": 3.0},
                  docker_at(_squeeze, 1.0, 3.0), own_server=True),
    ]


class DockerMatrixRunner(matrix.MatrixRunner):
    """The chaos matrix with containers from ``image`` as its dedicated servers."""

    def __init__(self, env: matrix.ChaosEnv, selected: list[FaultCase], image: str):
        super().__init__(env, selected)
        self.image = image

    async def _dedicated_server(self, case: FaultCase) -> Any:
        import asyncio

        def start() -> ContainerServer:
            server = ContainerServer.from_image(
                self.image, args=server_args("scripted", self.env.defects, test_hooks=True, extra=case.server_args))
            if case.params.get("restart") == "policy":
                server.container.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
            return server

        return await asyncio.to_thread(start)


__all__ = ["DockerMatrixRunner", "PROCESS_CASES", "cases", "docker_at"]
