"""The connections a codec's frames travel on: WebSocket, plain TCP, Socket.IO.

Every connection is shaped like the ``websockets`` asyncio ``ClientConnection`` the drivers were
written for: ``send(frame)``, ``recv() -> frame``, ``close(code, reason)``, and ``transport`` (the
asyncio transport, for scenarios that stop reading or drop the connection on purpose). A closed
connection raises ``websockets``' ``ConnectionClosed`` carrying the close code the transport
stands for, so the drivers' close handling (``_common.close_info``) serves all of them:

- TCP has no close codes: the peer ending the stream cleanly (EOF) is 1000, a reset or an abort
  1006; a close from this side is the code given to ``close``.
- Socket.IO: a disconnect by the server (``io server disconnect``) is 1000, a lost transport
  1006, this side's ``close`` the code given.

``connect(request, headers, open_timeout)`` opens the one ``request.transport`` names.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from harness.drivers._common import ABNORMAL_CLOSURE, WS_OPTIONS
from harness.protocols.base import ConnectRequest

READ_SIZE = 1 << 16
CLOSE_TIMEOUT_S = WS_OPTIONS["close_timeout"]


def closed_error(code: int, reason: str = "", *, by_peer: bool) -> ConnectionClosed:
    """The ``ConnectionClosed`` for a transport that ended with ``code`` (1006: no close at all)."""
    if code == ABNORMAL_CLOSURE:
        return ConnectionClosedError(None, None)
    frame = Close(code, reason)
    cls = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
    return cls(frame, None) if by_peer else cls(frame, frame, False)


class SocketIORefused(OSError):
    """The server refused the Socket.IO connect (``connect_error``). ``status`` is the HTTP status
    the refusal stands for when the server gave one as ``data.status`` (401 for a wrong key)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class TcpConnection:
    """A TCP stream: frames are written as they are; ``recv`` returns what the socket gave."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._closed: ConnectionClosed | None = None  # set once the end is known
        self._local_close: tuple[int, str] | None = None

    @property
    def transport(self) -> asyncio.Transport:
        return self.writer.transport  # type: ignore[return-value]

    async def send(self, frame: bytes | str) -> None:
        if self._closed is not None or self._local_close is not None:
            raise self._closed or closed_error(*self._local_close, by_peer=False)  # type: ignore[misc]
        try:
            self.writer.write(frame.encode("utf-8") if isinstance(frame, str) else frame)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self._closed = closed_error(ABNORMAL_CLOSURE, by_peer=True)
            raise self._closed from exc

    async def recv(self) -> bytes:
        if self._closed is not None:
            raise self._closed
        try:
            data = await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            data, aborted = b"", True
        else:
            aborted = False
        if data:
            return data
        if self._local_close is not None:
            self._closed = closed_error(*self._local_close, by_peer=False)
        else:
            self._closed = closed_error(ABNORMAL_CLOSURE if aborted else 1000, by_peer=True)
        raise self._closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close this side: what was written goes out (bounded wait), then the socket closes."""
        if self._local_close is not None or self._closed is not None:
            return
        self._local_close = (code, reason)
        self.writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            self.transport.abort()


class SocketIOConnection:
    """One Socket.IO client (python-socketio ``AsyncClient``, WebSocket transport): each frame is
    one event packed by :func:`harness.protocols.socketio.pack_event`; every event the server
    emits comes back from ``recv`` packed the same way."""

    def __init__(self, client: Any, queue: asyncio.Queue[bytes | str | ConnectionClosed]) -> None:
        self.client = client
        self.queue = queue
        self._closed: ConnectionClosed | None = None
        self._local_close: tuple[int, str] | None = None
        self._transport: asyncio.Transport | None = None

    @property
    def transport(self) -> asyncio.Transport:
        """The TCP transport under Engine.IO's WebSocket (aiohttp's connection), kept from the
        connect: aiohttp lets go of it once the socket has closed, and an abort then is a no-op."""
        if self._transport is None:
            connection = self.client.eio.ws._response.connection
            self._transport = connection.transport if connection is not None else None
        if self._transport is None:
            raise RuntimeError("the Socket.IO connection has no transport (it closed before it was asked for)")
        return self._transport

    async def send(self, frame: bytes | str) -> None:
        from harness.protocols.socketio import unpack_event

        if self._closed is not None:
            raise self._closed
        if self._local_close is not None or not self.client.connected:
            raise closed_error(*(self._local_close or (ABNORMAL_CLOSURE, "")), by_peer=False)
        event, data = unpack_event(frame)
        await self.client.emit(event, data)

    async def recv(self) -> bytes | str:
        if self._closed is not None:
            raise self._closed
        item = await self.queue.get()
        if isinstance(item, ConnectionClosed):
            self._closed = item
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._local_close is not None or self._closed is not None:
            return
        self._local_close = (code, reason)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.client.disconnect()
        self.queue.put_nowait(closed_error(code, reason, by_peer=False))


async def _connect_socketio(request: ConnectRequest, headers: dict[str, str], open_timeout: float) -> SocketIOConnection:
    import socketio

    from harness.protocols.socketio import pack_event

    queue: asyncio.Queue[bytes | str | ConnectionClosed] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False, ssl_verify=True)
    conn = SocketIOConnection(client, queue)

    @client.on("*")
    async def any_event(event: str, *args: Any) -> None:
        queue.put_nowait(pack_event(event, args[0] if args else None))

    refusals: list[Any] = []

    @client.event
    async def connect_error(data: Any = None) -> None:
        refusals.append(data)

    @client.event
    async def disconnect(reason: Any = None) -> None:
        if conn._local_close is not None:
            return  # close() reports its own code
        server = getattr(client, "reason", None)
        by_server = reason is not None and server is not None and reason == server.SERVER_DISCONNECT
        queue.put_nowait(closed_error(1000 if by_server else ABNORMAL_CLOSURE, str(reason or ""), by_peer=True))

    try:
        await client.connect(request.url, headers=headers, transports=["websocket"],
                             socketio_path=request.socketio_path, wait_timeout=max(0.001, open_timeout))
    except socketio.exceptions.ConnectionError as exc:
        with contextlib.suppress(Exception):
            await client.disconnect()
        messages = [r.get("message", r) if isinstance(r, dict) else r for r in refusals]
        why = f": {'; '.join(map(str, messages))}" if refusals else ""
        if not refusals:
            raise OSError(f"Socket.IO connection to {request.url} failed: {exc}") from exc
        extra = refusals[0].get("data") if isinstance(refusals[0], dict) else None
        status = extra.get("status") if isinstance(extra, dict) else None
        raise SocketIORefused(f"the server refused the Socket.IO connection{why}",
                              status if isinstance(status, int) and not isinstance(status, bool) else None) from exc
    conn.transport  # noqa: B018 - kept now, while aiohttp still holds it
    return conn


def prepare(request: ConnectRequest) -> None:
    """Load what ``request``'s transport needs (python-socketio and aiohttp take a good part of a
    second to import), so a connect latency measured after this is the connection's own."""
    if request.transport == "socketio":
        import socketio  # noqa: F401


async def connect(request: ConnectRequest, headers: dict[str, str] | None = None, *, open_timeout: float) -> Any:
    """Open the connection ``request`` asks for (OSError / TimeoutError / WebSocketException on failure)."""
    headers = request.headers if headers is None else headers
    if request.transport == "tcp":
        parts = urlsplit(request.url)
        if parts.scheme != "tcp" or not parts.hostname or not parts.port:
            raise OSError(f"a TCP stream needs a tcp://host:port address, got {request.url!r}")
        async with asyncio.timeout(open_timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return TcpConnection(reader, writer)
    if request.transport == "socketio":
        async with asyncio.timeout(open_timeout):
            return await _connect_socketio(request, headers, open_timeout)
    return await ws_connect(request.url, additional_headers=headers, subprotocols=list(request.subprotocols) or None,
                            open_timeout=open_timeout, **WS_OPTIONS)
