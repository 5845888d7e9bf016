"""The ASGI app: FastAPI routes (HTTP API, pages), the v1 stream and the vendor endpoints, around
one ServerState; ``create_asgi`` puts the Socket.IO endpoint (``/socket.io``) in front of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .config import ServerConfig
from .http_api import build_router, error_response
from .pages import mount_pages
from .sessions import SessionError
from .server_parts import ServerState
from .stream import serve_stream
from .wire import VENDOR_ROUTES
from .wire.adapter import Adapter
from .wire.connection import serve_vendor


def create_app(config: ServerConfig, state: ServerState | None = None) -> FastAPI:
    state = state or ServerState.build(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(title="reference transcription server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state

    @app.exception_handler(SessionError)
    async def on_session_error(request: Request, exc: SessionError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(SessionError(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}"))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(SessionError(400, "bad_request", first.get("msg", "bad request"), field))

    app.include_router(build_router(state))
    mount_pages(app, state)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await serve_stream(ws, state.manager, state.stats)

    for path, adapter in VENDOR_ROUTES.items():
        app.add_api_websocket_route(path, _vendor_endpoint(state, adapter))

    return app


def create_asgi(config: ServerConfig, state: ServerState | None = None):  # noqa: ANN201 - an ASGI app
    """The whole server: python-socketio's ASGI app serves ``/socket.io`` and hands every other
    request (and the lifespan) to the FastAPI app."""
    import socketio

    from .wire.socketio import SOCKETIO_PATH, build_server

    state = state or ServerState.build(config)
    return socketio.ASGIApp(build_server(state), other_asgi_app=create_app(config, state), socketio_path=SOCKETIO_PATH)


def _vendor_endpoint(state: ServerState, adapter: type[Adapter]):  # noqa: ANN202 - a route function
    async def endpoint(ws: WebSocket) -> None:
        await serve_vendor(ws, state, adapter)

    return endpoint
