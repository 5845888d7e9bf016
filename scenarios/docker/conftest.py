"""Fixtures of the docker suite: the reference server's image (built when missing or out of date,
or ``--target-image``), one container of it as the suite's backend (or ``--target-container``),
and the chaos matrix's runner whose dedicated servers are containers of that image.

Without a Docker engine the suite's scenarios are left out with the reason (what is missing and
how to get it); they are never counted as passes.
"""

from __future__ import annotations

import pytest

from harness.pytest_plugin import Target


@pytest.fixture(scope="session")
def docker_image(harness_options) -> str:
    from harness.containers.engine import engine_problem

    problem = engine_problem()
    if problem:
        pytest.skip(f"the docker suite needs a Docker engine: {problem}")
    if harness_options.target:
        pytest.skip("the docker suite tests a backend in a container: give --target-image or --target-container, "
                    "not --target")
    if harness_options.target_image:
        return harness_options.target_image
    if harness_options.target_container:
        return harness_options.target_container  # not an image: the matrix cases need one (they say so)
    from harness.containers.image import ensure_image

    return ensure_image(log=print)


@pytest.fixture(scope="session")
def target(harness_options, docker_image) -> Target:
    """The suite's backend: a container (the run's engine and defects, test hooks on), removed at the end."""
    from harness.containers.server import ContainerServer, server_args
    from harness.containers.target import container_server, server_defects

    if harness_options.container:
        server = container_server(harness_options)
    else:
        server = ContainerServer.from_image(docker_image, args=server_args(
            harness_options.engine, server_defects(harness_options.defects), test_hooks=True))
    try:
        yield Target(http_url=server.url, api_key=server.api_key, protocol=harness_options.protocol, server=server,
                     defects=harness_options.defects)
    finally:
        server.close()


@pytest.fixture
def protocol() -> str:
    """The conformance scenarios reused here speak the reference protocol to the container."""
    return "reference"


def _selected_cases(session: pytest.Session) -> list:
    from harness.faults.matrix import FaultCase

    out: list[FaultCase] = []
    for item in session.items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if isinstance(case, FaultCase) and case not in out:
            out.append(case)
    return out


@pytest.fixture(scope="session")
def docker_matrix(request: pytest.FixtureRequest, target, harness_options, manifest, docker_image):
    from harness.containers.matrix import DockerMatrixRunner
    from harness.containers.target import server_defects
    from harness.faults.matrix_runner import ChaosEnv

    if harness_options.target_container:
        pytest.skip("the container fault cases start containers of their own from an image: give --target-image")
    env = ChaosEnv(http_url=target.http_url, api_key=target.api_key, protocol=target.protocol,
                   defects=server_defects(harness_options.defects), embedded=True, manifest=manifest,
                   allow_remote=harness_options.allow_remote, max_parallel=3, max_servers=3)
    runner = DockerMatrixRunner(env, _selected_cases(request.session), docker_image).start()
    try:
        yield runner
    finally:
        runner.close()
