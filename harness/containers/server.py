"""A backend in a Docker container with the embedded server's life cycle, so the process faults
(``harness.faults.process``: kill -9 and restart, freeze, SIGTERM) and the chaos matrix's process
cases run against it exactly as against ``harness.services.ReferenceServer``:

========================  ==========================================================
ReferenceServer           ContainerServer
========================  ==========================================================
``kill()`` (SIGKILL)      ``docker kill --signal SIGKILL``
``stop()`` (SIGTERM)      ``docker stop --time GRACE`` (SIGTERM, SIGKILL after GRACE)
``start()``               ``docker start`` + readiness (log line, then GET /health)
``freeze()``/``thaw()``   ``docker pause`` / ``docker unpause`` (the cgroup freezer)
========================  ==========================================================

The host port is published once (``127.0.0.1:<free port>``) and kept across restarts, and the
database lives in the container's own filesystem, which a restart keeps: resume is tested on it.

``ContainerServer.from_image`` starts a new container (removed by ``close()``);
``ContainerServer.attach`` takes a running one by name (left running by ``close()``).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from harness.containers import engine
from harness.containers.ready import HttpStatus, LogLine, NotReady, PortOpen, Wait, wait_ready

DEFAULT_PORT = 8700
READY_LOG = r"reference-server listening on"
LABEL = "transcription-harness"  # every container the harness starts carries it (cleanup by label)


class ContainerError(RuntimeError):
    """A container could not be started, found or controlled; the message says which and why."""


@dataclass
class _Proc:
    """What ``harness.faults.process`` reads of ``server.proc``: the pid of the container's init."""

    pid: int | None


class ContainerServer:
    def __init__(self, container: Any, host_port: int, api_key: str, *, owned: bool, waits: list[Wait] | None = None,
                 start_timeout_s: float = 90.0, stop_grace_s: float = 10.0):
        self.container = container
        self.host = "127.0.0.1"
        self.port = host_port
        self.api_key = api_key
        self.owned = owned
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self.waits = waits if waits is not None else default_waits(api_key)
        self.ready_s: float | None = None

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_image(cls, image: str, *, args: list[str] | tuple[str, ...] = (), container_port: int = DEFAULT_PORT,
                   api_key: str | None = None, name: str | None = None, env: dict[str, str] | None = None,
                   waits: list[Wait] | None = None, start_timeout_s: float = 90.0, client: Any = None) -> ContainerServer:
        """Run ``image`` (its command extended by ``args``) with ``container_port`` published on a
        free loopback port, and wait until it is ready."""
        from harness.services import free_port

        docker_client = client or engine.client()
        import docker

        try:
            docker_client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            raise ContainerError(f"image {image} is not in the local image store: build it "
                                 f"(`harness image build`) or `docker load` it; no registry is pulled from") from exc
        key = api_key or os.environ.get("REFERENCE_API_KEY") or secrets.token_urlsafe(18)
        host_port = free_port()
        try:
            container = docker_client.containers.run(
                image, list(args), detach=True, name=name, labels={LABEL: "1"},
                environment={"REFERENCE_API_KEY": key, **(env or {})},
                ports={f"{container_port}/tcp": ("127.0.0.1", host_port)},
            )
        except docker.errors.APIError as exc:
            raise ContainerError(f"could not start a container from {image}: {exc.explanation or exc}") from exc
        server = cls(container, host_port, key, owned=True, waits=waits, start_timeout_s=start_timeout_s)
        try:
            server._wait()
        except BaseException:
            server.close()
            raise
        return server

    @classmethod
    def attach(cls, name: str, *, container_port: int = DEFAULT_PORT, api_key: str | None = None,
               client: Any = None) -> ContainerServer:
        """A running container, by name or id; its published loopback port for ``container_port``.
        The API key: ``api_key``, else the container's own ``REFERENCE_API_KEY``."""
        docker_client = client or engine.client()
        import docker

        try:
            container = docker_client.containers.get(name)
        except docker.errors.NotFound as exc:
            raise ContainerError(f"no container named {name!r} (see `docker ps`)") from exc
        if container.status != "running":
            raise ContainerError(f"container {name} is {container.status}, not running")
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{container_port}/tcp") or []
        if not bindings:
            published = ", ".join(sorted((container.attrs["NetworkSettings"].get("Ports") or {}))) or "none"
            raise ContainerError(f"container {name} does not publish port {container_port}/tcp "
                                 f"(published: {published}); use --container-port or `docker run -p`")
        host_port = int(bindings[0]["HostPort"])
        if not api_key:
            env = dict(e.split("=", 1) for e in container.attrs["Config"].get("Env") or [] if "=" in e)
            api_key = env.get("REFERENCE_API_KEY")
        if not api_key:
            raise ContainerError(f"container {name} has no REFERENCE_API_KEY in its environment: give --api-key")
        server = cls(container, host_port, api_key, owned=False)
        server._wait([HttpStatus("/health", 200, server.auth_headers())])
        return server

    # --- addresses (as ReferenceServer) ---------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def proc(self) -> _Proc:
        self.container.reload()
        return _Proc(self.container.attrs["State"].get("Pid") or None)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    # --- life cycle (as ReferenceServer) --------------------------------------------------
    def _wait(self, waits: list[Wait] | None = None) -> None:
        try:
            self.ready_s = wait_ready(self.container, self.host, self.port, waits or self.waits, self.start_timeout_s)
        except NotReady as exc:
            raise ContainerError(str(exc)) from exc

    def status(self) -> str:
        self.container.reload()
        return self.container.status

    def is_running(self) -> bool:
        return self.status() == "running"

    def start(self) -> ContainerServer:
        """``docker start`` (after a kill or a stop) and wait until ready again."""
        if self.status() == "running":
            raise ContainerError(f"container {self.name} is already running")
        self.container.start()
        self._wait()
        return self

    def kill(self) -> None:
        """SIGKILL to the container's processes: what a crash looks like."""
        if self.status() in ("running", "paused"):
            self.container.kill(signal="SIGKILL")
            self.container.wait(timeout=30)

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM, and SIGKILL after the grace period (``docker stop``); the exit code."""
        if self.status() == "paused":
            self.container.unpause()
        if self.status() != "running":
            return self.container.attrs["State"].get("ExitCode")
        grace = self.stop_grace_s if timeout_s is None else timeout_s
        self.container.stop(timeout=int(max(1, round(grace))))
        return int(self.container.wait(timeout=grace + 30)["StatusCode"])

    def freeze(self) -> None:
        if self.status() == "running":
            self.container.pause()

    def thaw(self) -> None:
        if self.status() == "paused":
            self.container.unpause()

    def logs(self, tail: int = 200) -> str:
        return self.container.logs(tail=tail).decode("utf-8", "replace")

    def output(self) -> str:
        return self.logs()

    def close(self) -> None:
        """Remove a container the harness started (whatever state it is in); leave an attached one."""
        if not self.owned:
            return
        import docker

        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass

    def __enter__(self) -> ContainerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_waits(api_key: str) -> list[Wait]:
    """The reference server's readiness: its listening line, the port, then an authorised /health 200."""
    return [LogLine(READY_LOG), PortOpen(), HttpStatus("/health", 200, {"Authorization": f"Bearer {api_key}"})]


def server_args(engine_name: str = "scripted", defects: tuple[str, ...] | list[str] = (), test_hooks: bool = True,
                extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The reference server's options inside the image (host, port and database are the image's)."""
    args = ["--engine", engine_name]
    for d in defects:
        args += ["--defect", d]
    if test_hooks:
        args.append("--test-hooks")
    return args + list(extra)


__all__ = ["ContainerError", "ContainerServer", "DEFAULT_PORT", "default_waits", "server_args"]
