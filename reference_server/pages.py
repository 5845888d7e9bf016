"""The browser pages: /live, /sessions/{id}/view, their static files, and the page's two helpers.

``POST /live/session`` exists only so that a browser never holds the API key: the page asks the
server to create a session with the server's own key and gets back the same body as
``POST /v1/sessions``, whose session token opens that one session (stream and GET) and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .http_api import create_and_answer
from .sessions import SessionError
from .server_parts import ServerState

STATIC_DIR = Path(__file__).parent / "static"


def page(name: str) -> FileResponse:
    path = STATIC_DIR / name
    if not path.is_file():
        raise SessionError(404, "not_found", f"page {name} is not installed")
    return FileResponse(path, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


def mount_pages(app: FastAPI, state: ServerState) -> None:
    router = APIRouter()

    @router.get("/live")
    async def live() -> FileResponse:
        return page("live.html")

    @router.get("/sessions/{session_id}/view")
    async def view(session_id: str) -> FileResponse:
        return page("view.html")  # the page reads the session with its token; nothing secret here

    @router.get("/live/config.json")
    async def live_config() -> JSONResponse:
        # The page applies the browser defects itself; it never gets a key (api_key_hint is null).
        return JSONResponse({"defects": state.config.defects.sorted(), "api_key_hint": None},
                            headers={"Cache-Control": "no-store"})

    @router.post("/live/session", status_code=201)
    async def live_session(request: Request) -> JSONResponse:
        return await create_and_answer(state, request)

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
