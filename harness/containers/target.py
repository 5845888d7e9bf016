"""The backend under test in a container, from the harness's options: ``--target-image`` (started
for the session with the run's engine, defects and test hooks, removed afterwards) or
``--target-container`` (a running container, attached to and left running)."""

from __future__ import annotations

from typing import Any

from harness.containers.server import ContainerError, ContainerServer, server_args


def server_defects(defects: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The run's defects that are the server's (relay defects belong to the relay suite's service)."""
    from harness.relay import split_defects

    return split_defects(defects)[0]


def container_server(opts: Any) -> ContainerServer:
    """A ready ContainerServer for ``opts`` (``harness.pytest_plugin.HarnessOptions``); a
    ``harness.services.ServiceError`` naming what went wrong when there is none, so the run is
    reported as a harness error, not as a backend failure."""
    from harness.containers.engine import EngineUnavailable
    from harness.services import ServiceError

    try:
        if opts.target_container:
            return ContainerServer.attach(opts.target_container, container_port=opts.container_port,
                                          api_key=opts.api_key)
        return ContainerServer.from_image(opts.target_image, container_port=opts.container_port,
                                          api_key=opts.api_key,
                                          args=server_args(opts.engine, server_defects(opts.defects), test_hooks=True))
    except (ContainerError, EngineUnavailable) as exc:
        raise ServiceError(str(exc)) from exc
