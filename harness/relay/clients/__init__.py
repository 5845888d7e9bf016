"""Real voice-agent STT clients as the system under test (the relay suite's ``clients`` group).

One driver module per client library (``livekit_deepgram``, ``pipecat_deepgram``,
``deepgram_sdk``), each with a ``NAME``, its ``DOCUMENTED`` behaviour and a ``DRIVER`` behind
:class:`~harness.relay.clients.base.Driver`. Modules are imported by name only when a driver
runs, so the harness does not import the libraries (``pip install -e ".[clients]"``).
To add a client: a module here with those three names, and a line in ``DRIVERS``.
"""

from __future__ import annotations

import importlib
from typing import Any

DRIVERS: dict[str, str] = {
    "livekit-deepgram": "harness.relay.clients.livekit_deepgram",
    "pipecat-deepgram": "harness.relay.clients.pipecat_deepgram",
    "deepgram-sdk": "harness.relay.clients.deepgram_sdk",
}


def driver_module(name: str) -> Any:
    if name not in DRIVERS:
        raise ValueError(f"unknown client driver {name!r}; known: {', '.join(DRIVERS)}")
    return importlib.import_module(DRIVERS[name])


def load_driver(name: str) -> Any:
    return driver_module(name).DRIVER
