"""Fixtures for the fault machinery's own tests: a real toxiproxy-server and a TCP echo server."""

from __future__ import annotations

import asyncio

import pytest

from harness.services import ToxiproxyServer, find_toxiproxy_server


@pytest.fixture(scope="session")
def toxiproxy_url():
    if find_toxiproxy_server() is None:
        pytest.skip("toxiproxy-server not installed (scripts/bootstrap.sh builds it)")
    server = ToxiproxyServer(url=None)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def tcp_echo():
    """A TCP echo server on loopback: ``host:port``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
