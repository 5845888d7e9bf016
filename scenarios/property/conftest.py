"""The property suite: hypothesis stateful testing of one backend session at a time."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Also registered by harness.selftest when the self-test loads it; registering here keeps a
    # plain `pytest scenarios/property` free of unknown-marker warnings.
    config.addinivalue_line("markers", "catches(*defects): this scenario catches these planted defects")
