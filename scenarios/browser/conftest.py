"""Fixtures of the browser suite: the client config, one Chromium per fixture WAV (its fake
microphone), Toxiproxy for stream cuts, and reference servers of the suite's own for restarts.

A missing Chromium or a bad client config is a harness error (the suite cannot judge the
client), never a silent skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One event loop for the suite, so that one Chromium per WAV serves every scenario.
    here = Path(__file__).parent
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if item.path.is_relative_to(here) and pytest_asyncio.is_async_test(item):
            item.add_marker(session_loop, append=False)


@pytest.fixture(scope="session")
def client_config():
    """The web client under test (scenarios/browser/client.toml or $HARNESS_BROWSER_CLIENT)."""
    from browser_client import ClientConfigError, load_config

    try:
        return load_config()
    except ClientConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture(scope="session")
def base_url(target, client_config, harness_options) -> str:
    """Where the client's page is served: the target's base URL (loopback unless --allow-remote)."""
    from harness.safety import RemoteTargetError

    try:
        client_config.page_url(target.http_url, None, harness_options.allow_remote)
    except RemoteTargetError as exc:
        raise pytest.UsageError(str(exc)) from exc
    return target.http_url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium_for(manifest) -> AsyncIterator[Callable[..., Awaitable[object]]]:
    """``await chromium_for(fixture_id)``: a running Chromium whose microphone plays that fixture
    (launched once per WAV); ``microphone=False`` gives one that is denied the microphone."""
    from harness.browser import Chromium, chromium_problem
    from harness.services import ServiceError

    problem = chromium_problem()
    if problem:
        raise ServiceError(f"the browser suite needs Chromium: {problem}")
    browsers: dict[tuple[str, bool], Chromium] = {}

    async def get(fixture_id: str, microphone: bool = True) -> Chromium:
        key = (fixture_id, microphone)
        if key not in browsers:
            browsers[key] = await Chromium(fake_audio=manifest.get(fixture_id).path, microphone=microphone).start()
        return browsers[key]

    try:
        yield get
    finally:
        for browser in browsers.values():
            await browser.close()


@pytest.fixture
def own_server(target) -> Iterator[Callable[..., object]]:
    """Starts reference servers of this scenario's own (with the run's defects), stopped at the end.

    Needs the embedded reference server: the harness cannot restart a user's backend.
    """
    from harness.services import ReferenceServer

    if not target.embedded:
        pytest.skip("needs the embedded reference server: the harness does not restart a --target backend")
    servers: list[ReferenceServer] = []

    def start(engine: str = "scripted", **kwargs) -> ReferenceServer:
        server = ReferenceServer(engine=engine, defects=target.defects, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()
