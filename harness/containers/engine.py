"""The Docker engine: a client, or a sentence saying exactly what is missing.

Scenarios that need an engine call :func:`engine_problem` and are left out with its answer as the
reason; :func:`client` raises :class:`EngineUnavailable` with the same text.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

SOCKET = "/var/run/docker.sock"


class EngineUnavailable(RuntimeError):
    """No usable Docker engine; the message says what is missing and how to get it."""


def engine_problem() -> str | None:
    """None when a Docker engine answers; otherwise what is missing and how to fix it."""
    try:
        import docker
    except ImportError:
        return "the Docker SDK for Python is not installed: run `pip install -e .[dev]` (it depends on `docker`)"
    host = os.environ.get("DOCKER_HOST")
    if not host and not os.path.exists(SOCKET):
        if shutil.which("dockerd") is None:
            return ("no Docker engine: dockerd is not installed (Debian: `sudo apt-get install docker.io`, "
                    "or run `make bootstrap` as root)")
        return (f"no Docker engine: {SOCKET} does not exist, dockerd is installed but not running "
                "(start it: `sudo dockerd &`, or run `make bootstrap` as root, which starts it)")
    try:
        c = docker.from_env(timeout=20)
        c.ping()
        c.close()
    except docker.errors.DockerException as exc:
        where = host or SOCKET
        if "Permission denied" in str(exc):
            return (f"the Docker engine at {where} refused this user (permission denied): "
                    "add the user to the `docker` group or run as root")
        return f"the Docker engine at {where} does not answer: {exc}"
    return None


def client(timeout_s: int = 120) -> Any:
    """A ``docker.DockerClient``; EngineUnavailable (naming what is missing) when there is none."""
    problem = engine_problem()
    if problem:
        raise EngineUnavailable(problem)
    import docker

    return docker.from_env(timeout=timeout_s)
