"""Where the shipped scenario suites and audio fixtures are, in a checkout and when installed.

In a checkout they are ``scenarios/`` and ``fixtures/audio/`` next to ``harness/``; an installed
wheel carries them as the ``harness_scenarios`` and ``harness_fixtures`` packages (see setup.py).
The checkout wins when both exist, so an editable install always runs the files being edited.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def shipped_scenarios() -> Path:
    """The scenario suites that came with this harness (a folder that may not exist if broken)."""
    checkout = CHECKOUT / "scenarios"
    if (checkout / "__init__.py").is_file():
        return checkout
    return _package_dir("harness_scenarios") or checkout


def shipped_examples() -> Path:
    """The examples that came with this harness (``relay/``: the relay suite's default service)."""
    checkout = CHECKOUT / "examples"
    if (checkout / "__init__.py").is_file():
        return checkout
    return _package_dir("harness_examples") or checkout


def shipped_fixtures() -> Path:
    """The audio fixtures that came with this harness (the folder holding manifest.json)."""
    checkout = CHECKOUT / "fixtures" / "audio"
    if checkout.is_dir():
        return checkout
    package = _package_dir("harness_fixtures")
    return package / "audio" if package else checkout
