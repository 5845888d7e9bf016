"""Fixtures of the chaos suite: a Toxiproxy server, and the matrix runner that runs every
selected fault case side by side in the background while the tests collect their results."""

from __future__ import annotations

import pytest

from harness.faults.matrix import FaultCase
from harness.faults.matrix_runner import ChaosEnv, MatrixRunner


def _selected_cases(session: pytest.Session) -> list[FaultCase]:
    out: list[FaultCase] = []
    for item in session.items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if isinstance(case, FaultCase) and case not in out:
            out.append(case)
    return out


@pytest.fixture(scope="session")
def chaos_matrix(request: pytest.FixtureRequest, target, harness_options, manifest, toxiproxy):
    """Starts every selected case at once (bounded concurrency) and hands out results in order."""
    url, missing = toxiproxy
    env = ChaosEnv(
        http_url=target.http_url, api_key=target.api_key, protocol=target.protocol, toxiproxy_url=url,
        toxiproxy_missing=missing or "", defects=tuple(target.defects), embedded=target.embedded,
        manifest=manifest, allow_remote=harness_options.allow_remote,
        max_parallel=4 if harness_options.nightly else 8, capabilities=harness_options.capabilities_for(),
    )
    runner = MatrixRunner(env, _selected_cases(request.session)).start()
    try:
        yield runner
    finally:
        runner.close()
