"""Fixtures of the container tests: a real Docker engine and the reference server's image.

Bootstrap installs and starts the engine and builds the image; without them these tests fail
saying what is missing (they are part of CI here, never skipped into a pass)."""

from __future__ import annotations

import pytest

from harness.containers.engine import engine_problem

BASE_IMAGE_ENV = "harness-debian-base"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/containers" in str(item.path):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def engine():
    problem = engine_problem()
    if problem:
        pytest.fail(f"{problem} (run `make bootstrap` as root)")
    from harness.containers.engine import client

    c = client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def image(engine) -> str:
    """The reference server's image; reused when up to date (`harness image build` in bootstrap)."""
    from harness.containers.image import ensure_image

    return ensure_image()


@pytest.fixture(scope="session")
def base_image(engine, image) -> str:
    from harness.containers.image import BASE_REPO, host_suite

    return f"{BASE_REPO}:{host_suite()}"


@pytest.fixture(scope="module")
def shared_server(image):
    """One container for a module's tests (each starts one in about two seconds); every fault
    test leaves it running again, and ``server`` checks that it does."""
    from harness.containers.server import ContainerServer, server_args

    s = ContainerServer.from_image(image, args=server_args())
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def server(shared_server):
    yield shared_server
    shared_server.thaw()
    if shared_server.status() != "running":
        shared_server.start()  # a failed test left it down: the next test still gets a server
