"""Fixtures and collection rules of the conformance suite.

Protocol variants: against the embedded reference server (which speaks both) a scenario that
takes the ``protocol`` fixture runs once per protocol; against a user's ``--target`` it runs for
``--protocol`` only. Scenarios marked ``reference_only`` need the reference protocol's session
API (HTTP finalize, offsets, test hooks) and are left out for a Deepgram-only target.
"""

from __future__ import annotations

import pytest

MARKERS = (
    "catches(*defects): this scenario catches these planted defects (DEFECTS.md); the self-test runs it for them",
    "reference_only: needs the reference protocol (left out when --protocol deepgram targets a user's backend)",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def _protocols(config: pytest.Config) -> list[str]:
    opts = config._harness_options  # type: ignore[attr-defined]
    return ["reference", "deepgram"] if not opts.target else [opts.protocol]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "protocol" in metafunc.fixturenames:
        metafunc.parametrize("protocol", _protocols(metafunc.config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "reference" in _protocols(config):
        return
    dropped = [i for i in items if i.get_closest_marker("reference_only") and "conformance" in str(i.path)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]
