"""Fixtures of the chaos suite: a Toxiproxy server, and the matrix runner that runs every
selected fault case side by side in the background while the tests collect their results."""

from __future__ import annotations

import pytest

from harness.faults.matrix import ChaosEnv, FaultCase, MatrixRunner


@pytest.fixture(scope="session")
def toxiproxy_api():
    """(api_url, None) of a running Toxiproxy (TOXIPROXY_URL or one started here), or (None, why)."""
    from harness.services import TOXIPROXY_MISSING, ServiceError, ToxiproxyServer, find_toxiproxy_server

    server = ToxiproxyServer()
    if not server.external_url and find_toxiproxy_server() is None:
        yield None, TOXIPROXY_MISSING
        return
    try:
        server.start()
    except ServiceError as exc:
        yield None, str(exc)
        return
    try:
        yield server.url, None
    finally:
        server.stop()


def _selected_cases(session: pytest.Session) -> list[FaultCase]:
    out: list[FaultCase] = []
    for item in session.items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if isinstance(case, FaultCase) and case not in out:
            out.append(case)
    return out


@pytest.fixture(scope="session")
def chaos_matrix(request: pytest.FixtureRequest, target, harness_options, manifest, toxiproxy_api):
    """Starts every selected case at once (bounded concurrency) and hands out results in order."""
    url, missing = toxiproxy_api
    env = ChaosEnv(
        http_url=target.http_url, api_key=target.api_key, protocol=target.protocol, toxiproxy_url=url,
        toxiproxy_missing=missing or "", defects=tuple(target.defects), embedded=target.embedded,
        manifest=manifest, allow_remote=harness_options.allow_remote,
        max_parallel=4 if harness_options.nightly else 8,
    )
    runner = MatrixRunner(env, _selected_cases(request.session)).start()
    try:
        yield runner
    finally:
        runner.close()
