"""Fixtures of the reference server tests: real server processes (``python -m reference_server``,
port 0, scripted engine by default), started through harness.services like every other user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from harness.services import ReferenceServer
from srv_client import Api


@pytest.fixture
def start_ref_server() -> Iterator[Callable[..., ReferenceServer]]:
    """Starts reference servers with the given options; every one is stopped at the end."""
    servers: list[ReferenceServer] = []

    def start(*, engine: str = "scripted", defects: tuple[str, ...] = (), test_hooks: bool = False,
              extra_args: tuple[str, ...] = (), db_path=None) -> ReferenceServer:
        srv = ReferenceServer(engine=engine, defects=list(defects), test_hooks=test_hooks,
                              extra_args=list(extra_args), db_path=db_path)
        servers.append(srv)
        return srv.start()

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture(scope="module")
def ref_server() -> Iterator[ReferenceServer]:
    """One healthy server per test module (scripted engine, test hooks on, stall after 1 s)."""
    srv = ReferenceServer(engine="scripted", test_hooks=True, extra_args=["--stall-after", "1"])
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
async def api(ref_server: ReferenceServer) -> AsyncIterator[Api]:
    client = Api(ref_server.url, ref_server.api_key)
    yield client
    await client.aclose()
