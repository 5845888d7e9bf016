"""Backends in Docker containers: the engine (``engine``), readiness waits (``ready``), a server in
a container with the same life cycle as the embedded one (``server``), the reference server's image
built without a registry (``image``) and the ``docker`` nemesis (``faults``).

Everything speaks to the engine through the Docker SDK for Python (``docker`` on PyPI) over the
local socket; nothing here needs a registry or the internet.
"""
