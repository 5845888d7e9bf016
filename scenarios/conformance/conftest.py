"""Fixtures and collection rules of the conformance suite.

Protocol variants: against the embedded reference server (which speaks both) a scenario that
takes the ``protocol`` fixture runs once per protocol (Deepgram only when the server's default
engine is PocketSphinx); against a user's ``--target`` it runs for ``--protocol`` only. What each
scenario needs of the target is in its ``@pytest.mark.needs(...)`` marker; the harness plugin
leaves out, with the reason printed, those the target cannot serve.
"""

from __future__ import annotations

import pytest


# The embedded reference server speaks both built-in protocols: a scenario runs once per each.
EMBEDDED_VARIANTS = ("reference", "deepgram")


def _protocols(config: pytest.Config) -> list[str]:
    opts = config._harness_options  # type: ignore[attr-defined]
    if opts.target or opts.protocol not in EMBEDDED_VARIANTS:  # a user's backend or codec: that one only
        return [opts.protocol]
    # A Deepgram stream cannot choose its engine or give a script: it gets the server's default,
    # which must be a real recognizer for these scenarios to mean anything.
    return list(EMBEDDED_VARIANTS) if opts.engine == "pocketsphinx" else list(EMBEDDED_VARIANTS[:1])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "protocol" in metafunc.fixturenames:
        metafunc.parametrize("protocol", _protocols(metafunc.config))
