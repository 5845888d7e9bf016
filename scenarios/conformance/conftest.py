"""Fixtures and collection rules of the conformance suite.

Protocol variants: against the embedded reference server (which speaks both) a scenario that
takes the ``protocol`` fixture runs once per protocol (Deepgram only when the server's default
engine is PocketSphinx); against a user's ``--target`` it runs for ``--protocol`` only. Scenarios marked ``reference_only`` need the reference protocol's session
API (HTTP finalize, offsets) and are left out for a Deepgram-only target. Scenarios marked
``needs_test_hooks`` need a reference server started by the harness (test hooks, server flags) and
are left out, with a printed reason, for a user's backend.
"""

from __future__ import annotations

import pytest

MARKERS = (
    "reference_only: needs the reference protocol (left out when --protocol deepgram targets a user's backend)",
    "needs_test_hooks: needs a reference server the harness starts itself (left out for --target)",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def _protocols(config: pytest.Config) -> list[str]:
    opts = config._harness_options  # type: ignore[attr-defined]
    if opts.target:
        return [opts.protocol]
    # A Deepgram stream cannot choose its engine or give a script: it gets the server's default,
    # which must be a real recognizer for these scenarios to mean anything.
    return ["reference", "deepgram"] if opts.engine == "pocketsphinx" else ["reference"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "protocol" in metafunc.fixturenames:
        metafunc.parametrize("protocol", _protocols(metafunc.config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opts = config._harness_options  # type: ignore[attr-defined]
    mine = [i for i in items if "conformance" in str(i.path)]
    dropped: dict[pytest.Item, str] = {}
    if "reference" not in _protocols(config):
        dropped.update({i: "needs the reference protocol" for i in mine if i.get_closest_marker("reference_only")})
    if opts.target:
        dropped.update({i: "needs a reference server started by the harness (test hooks, --stall-after)"
                        for i in mine if i.get_closest_marker("needs_test_hooks")})
    if not dropped:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for item, why in dropped.items():
        line = f"conformance: {item.nodeid} left out: {why}"
        reporter.write_line(line) if reporter else print(line)
    config.hook.pytest_deselected(items=list(dropped))
    items[:] = [i for i in items if i not in dropped]
