"""The chaos matrix's process cases against a containerized server, and the docker layer's own.

``DockerMatrixRunner`` is the chaos matrix's runner (``harness.faults.matrix_runner``: cases side
by side, the same sessions, baselines and checks) whose dedicated servers are containers from an
image instead of processes. The process cases (kill -9 and restart, freeze, SIGTERM) then run
unchanged: their faults drive a ``ContainerServer`` through the same methods as an embedded
server (``docker kill``, ``docker pause``, ``docker stop``).

The docker cases add what only an engine can do (``harness.faults.docker_faults``): a crash
restarted by the container's restart policy, the network pulled and put back, CPU and memory
limits squeezed while it streams.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from harness.containers.server import ContainerServer, server_args
from harness.faults import matrix
from harness.faults.docker_faults import DockerDisconnect, DockerKill, DockerUpdate
from harness.faults.matrix import FaultCase
from harness.faults.matrix_runner import ChaosEnv, MatrixRunner
from harness.faults.schedule import AfterAudio, Step

RESUME = ("no-resume",)
PROCESS_CASES = ("kill9-restart", "frozen", "graceful-restart")  # matrix cases, by id


def cases(profile: str = "ci") -> list[FaultCase]:
    """The matrix's process cases (each on a container of its own), then the docker layer's:
    restart policy, network, resource limits."""
    by_id = {c.id: c for c in matrix.cases(profile)}
    missing = [cid for cid in PROCESS_CASES if cid not in by_id]
    if missing:
        raise KeyError(f"the chaos matrix has no case {', '.join(missing)}")
    # A restarted server has lost what no-resume corrupts (its in-memory stream state), so only the
    # network case, where the same server sees the client come back, is tagged for that defect.
    process = [replace(by_id[cid], id=f"container-{cid}") for cid in PROCESS_CASES]
    return process + [
        FaultCase("container-killed-restart-policy", (Step(DockerKill(restart="policy"), AfterAudio(2000)),)),
        FaultCase("container-network-disconnect", (Step(DockerDisconnect(), AfterAudio(2000), 2000),),
                  catches=RESUME),
        FaultCase("container-cpu-memory-squeeze", (Step(DockerUpdate(cpus=0.2, memory_mb=256), AfterAudio(1000), 3000),)),
    ]


class DockerMatrixRunner(MatrixRunner):
    """The chaos matrix with containers from ``image`` as its dedicated servers."""

    def __init__(self, env: ChaosEnv, selected: list[FaultCase], image: str):
        super().__init__(env, selected)
        self.image = image

    async def _dedicated_server(self, case: FaultCase) -> Any:
        policy = any(isinstance(s.fault, DockerKill) and s.fault.restart == "policy" for s in case.steps)

        def start() -> ContainerServer:
            server = ContainerServer.from_image(
                self.image, args=server_args("scripted", self.env.defects, test_hooks=True, extra=case.server_args))
            if policy:
                server.container.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
            return server

        return await asyncio.to_thread(start)


__all__ = ["DockerMatrixRunner", "PROCESS_CASES", "cases"]
