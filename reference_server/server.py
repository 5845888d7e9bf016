"""Runs the app under uvicorn: prints the listening line, closes streams with 1001 on SIGTERM.

uvicorn's own shutdown would close WebSockets with 1012; PROTOCOL.md says 1001 ("server shutting
down: reconnect with backoff and resume"), so our streams are closed first, then uvicorn stops.
The WebSocket implementation is uvicorn's ``websockets-sansio`` (the websockets library's
sans-I/O protocol; uvicorn deprecates its legacy ``websockets`` one in its favour). Pings every
heartbeat_s; a peer that has not answered a ping within heartbeat_s more (2 x heartbeat_s since
its last sign of life) is dropped.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import uvicorn

from .app import create_asgi
from .config import ServerConfig
from .server_parts import ServerState


class ReferenceUvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self.listening_url: str | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.listening_url = f"http://{shown}:{port}"
        extra = "".join(f" {name}={url}" for name, url in self.state.listener_urls().items())
        print(f"reference-server listening on {self.listening_url} api_key={self.state.config.api_key}{extra}",
              flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the streams are told to go
        self.state.close_listeners()
        try:
            await asyncio.wait_for(self.state.manager.close_streams(1001, "server shutting down"), timeout=3.0)
        except asyncio.TimeoutError:
            pass
        await super().shutdown(sockets)


def uvicorn_config(config: ServerConfig, app: object) -> uvicorn.Config:
    heartbeat = config.heartbeat_s if config.heartbeat_enabled else None  # defect no-heartbeat
    return uvicorn.Config(
        app, host=config.host, port=config.port, ws="websockets-sansio",
        ws_ping_interval=heartbeat, ws_ping_timeout=config.heartbeat_s if heartbeat else None,
        # room above max_frame_bytes so an oversized frame gets our frame_too_large error and 1009
        ws_max_size=max(1 << 20, 4 * (config.max_frame_bytes + 8)), ws_per_message_deflate=False,
        lifespan="on", log_level=config.log_level, access_log=False, timeout_graceful_shutdown=5,
    )


def run(config: ServerConfig) -> int:
    state = ServerState.build(config)
    server = ReferenceUvicorn(uvicorn_config(config, create_asgi(config, state)), state)
    # uvicorn re-raises the signal it caught once it has shut down; a no-op handler makes that
    # a clean exit 0 instead of death by SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    if not server.started:
        print("reference-server: could not start (see the messages above)", file=sys.stderr, flush=True)
        return 1
    return 0
