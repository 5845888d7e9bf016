"""Imports every built-in fault layer, so that each fault type is registered by name.

A new layer adds its module here (see :mod:`harness.faults.base` for how to write one).
"""

from harness.faults import docker_faults, signals, toxics, ws_faults  # noqa: F401

__all__: list[str] = []
