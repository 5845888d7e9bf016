"""Vendor protocols over plain TCP (Wyoming): a listener whose connections run through the same
``serve_vendor`` / ``VendorConnection`` as the WebSocket endpoints.

:class:`TcpSocket` is the part of Starlette's ``WebSocket`` that ``serve_vendor`` uses, over an
asyncio stream: ``receive`` gives ``websocket.receive`` messages with the bytes as they were read
(the adapter reassembles its own frames) and ``websocket.disconnect`` at the end of the stream;
``send_bytes`` writes; ``close`` flushes what was written and closes. TCP has no close codes: the
code an adapter closes with is kept in the connection record only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers, QueryParams

from .adapter import Adapter
from .connection import serve_vendor

if TYPE_CHECKING:
    from ..server_parts import ServerState

log = logging.getLogger("reference_server.wire")
READ_SIZE = 1 << 16
SEND_TIMEOUT_S = 10.0  # a peer that takes nothing for this long is dropped, not waited on forever
CLOSE_TIMEOUT_S = 2.0


class TcpSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> None:
        self.reader, self.writer = reader, writer
        self.query_params = QueryParams("")
        self.headers = Headers({})
        self.url = SimpleNamespace(path=path)
        self.closing = False

    async def accept(self, subprotocol: str | None = None) -> None:
        return None  # a TCP connection is accepted by being there

    async def send_denial_response(self, response: Any) -> None:
        await self.close(1008, "refused")

    async def receive(self) -> dict[str, Any]:
        try:
            data = await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            return {"type": "websocket.disconnect", "code": 1006, "reason": "connection reset"}
        if not data:
            return {"type": "websocket.disconnect", "code": 1006 if self.closing else 1000,
                    "reason": "closed by the server" if self.closing else "end of stream"}
        return {"type": "websocket.receive", "bytes": data}

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await self.writer.drain()
        except TimeoutError:
            self.writer.transport.abort()
            raise ConnectionError(f"the peer took nothing for {SEND_TIMEOUT_S:g} s") from None

    async def send_text(self, text: str) -> None:
        await self.send_bytes(text.encode("utf-8"))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """What was written goes out (bounded), then the socket closes; the reader sees the end."""
        if self.closing:
            return
        self.closing = True
        self.writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            self.writer.transport.abort()


async def start_listener(state: ServerState, make: Callable[..., Adapter], host: str, port: int,
                         path: str) -> asyncio.Server:
    """Listen on ``host:port`` (0: a free port); each connection is served by ``make``'s adapter."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = TcpSocket(reader, writer, path)
        try:
            await serve_vendor(sock, state, make, authenticate=False)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - one connection's failure must not reach the listener
            log.exception("%s: connection failed", path)
        finally:
            with contextlib.suppress(Exception):
                await sock.close()

    return await asyncio.start_server(on_client, host, port)
